/* iovec_copy: copies a file through readv/writev with garbage-collected buffers.
 *
 *     iovec_copy SRC DST     copy SRC to DST
 *     iovec_copy             copy a generated temporary file (removed afterwards)
 *
 * The iovec array is a scanned GC object (gc_alloc) and the buffers it points at
 * are gc_alloc_noscan objects. Before the kernel gets them, one gc_pinner pins
 * the array and every buffer, and gc_check_pointer(iov) must say GC_OK (no
 * unpinned heap pointer inside); after the call the pinner is undone. Meanwhile
 * the program keeps allocating garbage, so collections run while the buffers are
 * in the kernel's hands. At the end the copy is compared with the source byte
 * for byte; the exit status is 0 only if they are identical.
 */
#include <errno.h>
#include <fcntl.h>
#include <gcpin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum {
    NBUF = 16,                 /* buffers per readv/writev */
    BUF_SIZE = 64 * 1024,      /* bytes per buffer */
    GARBAGE_PER_ROUND = 2 << 20,
    GENERATED_SIZE = (8 << 20) + 12345,
};

static void fail(const char *what) {
    fprintf(stderr, "iovec_copy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void must(gc_status s, const char *what) {
    if (s != GC_OK) {
        fprintf(stderr, "iovec_copy: %s: %s\n", what, gc_strerror(s));
        exit(1);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Short-lived objects: the collector has work while the kernel holds buffers. */
static void make_garbage(size_t bytes) {
    for (size_t done = 0; done < bytes; done += 512) {
        void **p = gc_alloc(512);
        if (!p) fail("gc_alloc");
        p[0] = p;
    }
}

/* Writes iov[0..cnt) completely, advancing past partial writes. */
static void writev_all(int fd, struct iovec *iov, int cnt) {
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("writev");
        }
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) { /* inside a pinned buffer: interior pointers are fine */
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

struct totals {
    uint64_t bytes, rounds, pins;
};

/* One round: fresh buffers, pinned for the two system calls. Returns the bytes
 * copied (0 at end of file). */
static size_t copy_round(int in, int out, struct totals *t) {
    struct iovec *iov = gc_alloc(NBUF * sizeof *iov);
    if (!iov) fail("gc_alloc");
    for (int i = 0; i < NBUF; i++) {
        iov[i].iov_base = gc_alloc_noscan(BUF_SIZE);
        if (!iov[i].iov_base) fail("gc_alloc_noscan");
        iov[i].iov_len = BUF_SIZE;
    }
    /* cgocheck: the array points at unpinned heap objects, so it must not go to
     * the kernel yet. */
    if (gc_check_pointer(iov) != GC_ERR_UNPINNED_POINTER) {
        fprintf(stderr, "iovec_copy: gc_check_pointer missed the unpinned buffers\n");
        exit(1);
    }

    gc_pinner pinner = {0};
    must(pinner_pin(&pinner, iov), "pinner_pin(iov)");
    for (int i = 0; i < NBUF; i++) must(pinner_pin(&pinner, iov[i].iov_base), "pinner_pin(buffer)");
    t->pins += NBUF + 1;

    must(gc_check_pointer(iov), "gc_check_pointer before readv");
    ssize_t n;
    do n = readv(in, iov, NBUF);
    while (n < 0 && errno == EINTR);
    if (n < 0) fail("readv");

    make_garbage(GARBAGE_PER_ROUND); /* collections run; the buffers are pinned */

    if (n > 0) {
        size_t left = (size_t)n;
        int cnt = 0;
        for (; cnt < NBUF && left > 0; cnt++) {
            size_t take = left < BUF_SIZE ? left : BUF_SIZE;
            iov[cnt].iov_len = take;
            left -= take;
        }
        must(gc_check_pointer(iov), "gc_check_pointer before writev");
        writev_all(out, iov, cnt);
        t->bytes += (uint64_t)n;
        t->rounds++;
    }
    pinner_unpin(&pinner); /* the array and the buffers are ordinary garbage now */
    return (size_t)n;
}

static void generate(const char *path, size_t size) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) fail("open generated file");
    uint64_t x = 0x9E3779B97F4A7C15ull;
    unsigned char *buf = malloc(1 << 16);
    if (!buf) fail("malloc");
    for (size_t done = 0; done < size;) {
        size_t n = size - done < (1 << 16) ? size - done : (1 << 16);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)(x >> 24);
        }
        if (write(fd, buf, n) != (ssize_t)n) fail("write generated file");
        done += n;
    }
    free(buf);
    close(fd);
}

/* Compares the two files byte for byte; prints the first difference. */
static bool same_files(const char *a, const char *b) {
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    if (fa < 0 || fb < 0) fail("open for comparison");
    enum { CHUNK = 1 << 16 };
    unsigned char *ba = malloc(CHUNK), *bb = malloc(CHUNK);
    if (!ba || !bb) fail("malloc");
    uint64_t off = 0;
    bool same = true;
    for (;;) {
        ssize_t na = read(fa, ba, CHUNK), nb = 0;
        if (na < 0) fail("read");
        while (nb < na) { /* read exactly as much from b */
            ssize_t r = read(fb, bb + nb, (size_t)(na - nb));
            if (r < 0) fail("read");
            if (r == 0) break;
            nb += r;
        }
        if (na == 0) {
            if (read(fb, bb, 1) != 0) {
                fprintf(stderr, "iovec_copy: %s is longer than %s\n", b, a);
                same = false;
            }
            break;
        }
        if (nb != na) {
            fprintf(stderr, "iovec_copy: %s is shorter than %s (%llu bytes)\n", b, a,
                    (unsigned long long)(off + (uint64_t)nb));
            same = false;
            break;
        }
        if (memcmp(ba, bb, (size_t)na) != 0) {
            ssize_t i = 0;
            while (ba[i] == bb[i]) i++;
            fprintf(stderr, "iovec_copy: first difference at byte %llu\n", (unsigned long long)(off + (uint64_t)i));
            same = false;
            break;
        }
        off += (uint64_t)na;
    }
    free(ba);
    free(bb);
    close(fa);
    close(fb);
    return same;
}

int main(int argc, char **argv) {
    char src[64] = "", dst[64] = "";
    const char *from, *to;
    bool generated = argc < 3;
    if (argc != 1 && argc != 3) {
        fprintf(stderr, "usage: %s [SRC DST]\n", argv[0]);
        return 2;
    }
    if (generated) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(src, sizeof src, "%.40s/iovec_copy_src_XXXXXX", tmp);
        snprintf(dst, sizeof dst, "%.40s/iovec_copy_dst_XXXXXX", tmp);
        int a = mkstemp(src), b = mkstemp(dst);
        if (a < 0 || b < 0) fail("mkstemp");
        close(a);
        close(b);
        generate(src, GENERATED_SIZE);
        from = src;
        to = dst;
    } else {
        from = argv[1];
        to = argv[2];
    }

    int in = open(from, O_RDONLY);
    if (in < 0) fail(from);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) fail(to);

    gc_stats before, after;
    gc_get_stats(&before);
    struct totals t = {0, 0, 0};
    double t0 = now();
    while (copy_round(in, out, &t) > 0) {
    }
    double secs = now() - t0;
    close(in);
    close(out);
    gc_collect();
    gc_get_stats(&after);

    bool ok = same_files(from, to);
    double mib = (double)t.bytes / (1 << 20);
    printf("iovec_copy: %.1f MiB %s -> %s in %llu readv/writev rounds, %.3f s (%.0f MiB/s)\n", mib, from, to,
           (unsigned long long)t.rounds, secs, secs > 0 ? mib / secs : 0.0);
    printf("iovec_copy: %llu pins, %llu collections meanwhile, max pause %.3f ms, pinned objects now %llu\n",
           (unsigned long long)t.pins, (unsigned long long)(after.num_gc - before.num_gc),
           (double)after.max_pause_ns / 1e6, (unsigned long long)after.pinned_objects);
    printf("iovec_copy: copy %s\n", ok ? "verified byte for byte" : "DIFFERS from the source");
    if (after.pinned_objects != 0) {
        fprintf(stderr, "iovec_copy: objects still pinned after every pinner was undone\n");
        ok = false;
    }
    if (generated) {
        unlink(src);
        unlink(dst);
    }
    return ok ? 0 : 1;
}
