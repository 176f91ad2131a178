/* Zero-copy I/O with iovec arrays (examples/iovec_copy.c in small): a GC iovec
 * array pointing at GC buffers goes to readv/writev only once everything is
 * pinned, which gc_check_pointer confirms; buffers that only C memory and the
 * kernel refer to stay alive and in place while pinned and become garbage once
 * unpinned. */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/uio.h>

/* A thread that collects (and makes garbage) until told to stop. */
static atomic_int bg_stop;
static atomic_long bg_collections;

static void *background_collector(void *arg) {
    size_t size = (size_t)(uintptr_t)arg;
    while (!atomic_load(&bg_stop)) {
        for (int i = 0; i < 16; i++) {
            unsigned char *g = gc_alloc_noscan(size);
            if (g) memset(g, 0xEE, size);
        }
        gc_collect();
        atomic_fetch_add(&bg_collections, 1);
    }
    return NULL;
}

static void start_collector(pthread_t *t, size_t garbage_size) {
    atomic_store(&bg_stop, 0);
    REQUIRE(pthread_create(t, NULL, background_collector, (void *)(uintptr_t)garbage_size) == 0);
}

static void stop_collector(pthread_t t) {
    atomic_store(&bg_stop, 1);
    pthread_join(t, NULL);
}

/* ---------------------------------------------------------------------------
 * gc_check_pointer on an iovec array as buffers get pinned and unpinned. */

enum { NIOV = 4, SMALL_BUF = 4096 };

TEST(check_pointer_follows_the_pins_of_an_iovec_array) {
    struct iovec *iov = gc_alloc(NIOV * sizeof *iov);
    REQUIRE(iov != NULL);
    CHECK_STATUS(gc_check_pointer(iov), GC_OK); /* no pointers in it yet */
    for (int i = 0; i < NIOV; i++) {
        iov[i].iov_base = gc_alloc_noscan(SMALL_BUF);
        iov[i].iov_len = SMALL_BUF;
        REQUIRE(iov[i].iov_base != NULL);
        CHECK_STATUS(gc_check_pointer(iov[i].iov_base), GC_OK); /* noscan: nothing inside */
    }
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);

    gc_pinner bufs = {0};
    for (int i = 0; i < NIOV - 1; i++) CHECK_STATUS(pinner_pin(&bufs, iov[i].iov_base), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER); /* one left */
    CHECK_STATUS(pinner_pin(&bufs, iov[NIOV - 1].iov_base), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_OK); /* the array itself need not be */

    /* Interior pointers into pinned buffers are fine (a partial writev). */
    iov[0].iov_base = (char *)iov[0].iov_base + 100;
    CHECK_STATUS(gc_check_pointer(iov), GC_OK);
    iov[0].iov_base = (char *)iov[0].iov_base - 100;

    /* Recursion through pinned objects: outer -> iov (pinned) -> buffers. */
    gc_pinner arr = {0};
    CHECK_STATUS(pinner_pin(&arr, iov), GC_OK);
    void **outer = gc_alloc(2 * sizeof(void *));
    REQUIRE(outer != NULL);
    outer[0] = iov;
    CHECK_STATUS(gc_check_pointer(outer), GC_OK);
    pinner_unpin(&bufs);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(gc_check_pointer(outer), GC_ERR_UNPINNED_POINTER);
    pinner_unpin(&arr);
    CHECK_STATUS(gc_check_pointer(outer), GC_ERR_UNPINNED_POINTER); /* iov itself now */

    /* C memory is not checked, whatever it points at. */
    struct iovec on_stack[NIOV];
    memcpy(on_stack, iov, sizeof on_stack);
    CHECK_STATUS(gc_check_pointer(on_stack), GC_OK);
    struct iovec *in_malloc = malloc(sizeof on_stack);
    REQUIRE(in_malloc != NULL);
    memcpy(in_malloc, iov, sizeof on_stack);
    CHECK_STATUS(gc_check_pointer(in_malloc), GC_OK);
    free(in_malloc);
    CHECK_STATUS(gc_check_pointer(NULL), GC_ERR_NULL);
    escape(outer);
}

/* ---------------------------------------------------------------------------
 * The copy loop of examples/iovec_copy.c, small, with another thread collecting. */

enum { COPY_NBUF = 8, COPY_BUF = 4096, FILE_BYTES = 256 * 1024 + 123 };

static int temp_file(char *path, size_t n) {
    snprintf(path, n, "/tmp/gcpin_test_iovec_XXXXXX");
    int fd = mkstemp(path);
    if (fd >= 0) unlink(path); /* anonymous: gone when closed */
    return fd;
}

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        REQUIRE(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static NOINLINE void make_garbage(int n) {
    for (int i = 0; i < n; i++) {
        void **p = gc_alloc(96);
        p[0] = p;
    }
}

TEST_TIMEOUT(readv_writev_copy_through_pinned_gc_buffers_while_another_thread_collects, 60) {
    char in_path[64], out_path[64];
    int in = temp_file(in_path, sizeof in_path), out = temp_file(out_path, sizeof out_path);
    REQUIRE(in >= 0 && out >= 0);
    unsigned char *src = malloc(FILE_BYTES);
    REQUIRE(src != NULL);
    pattern_fill(src, FILE_BYTES, 77);
    write_all(in, src, FILE_BYTES);
    REQUIRE(lseek(in, 0, SEEK_SET) == 0);

    pthread_t bg;
    start_collector(&bg, COPY_BUF);
    gc_stats st0, st1;
    gc_get_stats(&st0);
    size_t copied = 0;
    int rounds = 0, bad_checks = 0;
    for (;;) {
        struct iovec *iov = gc_alloc(COPY_NBUF * sizeof *iov);
        REQUIRE(iov != NULL);
        for (int i = 0; i < COPY_NBUF; i++) {
            iov[i].iov_base = gc_alloc_noscan(COPY_BUF);
            REQUIRE(iov[i].iov_base != NULL);
            iov[i].iov_len = COPY_BUF;
        }
        gc_pinner pn = {0};
        CHECK_STATUS(pinner_pin(&pn, iov), GC_OK);
        for (int i = 0; i < COPY_NBUF; i++) CHECK_STATUS(pinner_pin(&pn, iov[i].iov_base), GC_OK);
        bad_checks += gc_check_pointer(iov) != GC_OK;
        long c0 = atomic_load(&bg_collections);
        ssize_t n = readv(in, iov, COPY_NBUF);
        REQUIRE(n >= 0);
        make_garbage(200);
        /* At least one whole collection on the other thread while the data
         * sit in the pinned buffers. */
        double end = check_now() + 5;
        while (atomic_load(&bg_collections) < c0 + 2 && check_now() < end) sched_yield();
        CHECK_GE(atomic_load(&bg_collections), c0 + 2);
        if (n == 0) {
            pinner_unpin(&pn);
            break;
        }
        size_t left = (size_t)n;
        int cnt = 0;
        for (; left > 0; cnt++) {
            iov[cnt].iov_len = left < COPY_BUF ? left : COPY_BUF;
            left -= iov[cnt].iov_len;
        }
        bad_checks += gc_check_pointer(iov) != GC_OK;
        ssize_t w = writev(out, iov, cnt);
        CHECK_EQ(w, n); /* regular file: complete */
        pinner_unpin(&pn);
        CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
        copied += (size_t)n;
        rounds++;
    }
    stop_collector(bg);
    gc_get_stats(&st1);
    CHECK_EQ(bad_checks, 0);
    CHECK_EQ(copied, FILE_BYTES);
    CHECK_GE(rounds, FILE_BYTES / (COPY_NBUF * COPY_BUF));
    CHECK_GE(st1.num_gc - st0.num_gc, (uint64_t)rounds);
    CHECK_EQ(st1.pinned_objects, 0);

    unsigned char *dst = malloc(FILE_BYTES + 1);
    REQUIRE(dst != NULL);
    REQUIRE(lseek(out, 0, SEEK_SET) == 0);
    size_t got = 0;
    ssize_t r;
    while ((r = read(out, dst + got, FILE_BYTES + 1 - got)) > 0) got += (size_t)r;
    CHECK_EQ(got, FILE_BYTES);
    CHECK(memcmp(src, dst, FILE_BYTES) == 0);
    free(src);
    free(dst);
    close(in);
    close(out);
}

/* ---------------------------------------------------------------------------
 * Buffers in a malloc iovec array: alive only by their pins. A reader thread
 * sits in readv() on a pipe with them while collections run; the data arrive
 * after the collections; once unpinned the buffers are garbage. */

enum { PIPE_NBUF = 8, PIPE_BUF_BYTES = 2048, PIPE_TOTAL = PIPE_NBUF * PIPE_BUF_BYTES };

static struct iovec *c_iov; /* malloc: the collector does not look here */
static gc_pinner pipe_pinner;
static int pipe_fds[2];
static atomic_int buf_fin, reader_started, reader_done;
static atomic_long reader_got;

static NOINLINE void pinned_buffers_in_malloc(void) {
    for (int i = 0; i < PIPE_NBUF; i++) {
        void *b = gc_alloc_noscan(PIPE_BUF_BYTES);
        REQUIRE(b != NULL);
        CHECK_STATUS(gc_set_finalizer(b, count_fin, &buf_fin), GC_OK);
        CHECK_STATUS(pinner_pin(&pipe_pinner, b), GC_OK);
        c_iov[i].iov_base = b;
        c_iov[i].iov_len = PIPE_BUF_BYTES;
    }
}

static void *pipe_reader(void *arg) {
    (void)arg;
    /* A copy of the array: readv may need to resume after a short read. This
     * thread makes no gcpin call, so it is not registered and its stack is not
     * scanned: the copy keeps nothing alive. */
    struct iovec iov[PIPE_NBUF];
    memcpy(iov, c_iov, sizeof iov);
    struct iovec *cur = iov;
    int cnt = PIPE_NBUF;
    long got = 0;
    atomic_store(&reader_started, 1);
    while (cnt > 0) {
        ssize_t n = readv(pipe_fds[0], cur, cnt);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
        size_t left = (size_t)n;
        while (cnt > 0 && left >= cur->iov_len) {
            left -= cur->iov_len;
            cur++;
            cnt--;
        }
        if (cnt > 0) {
            cur->iov_base = (char *)cur->iov_base + left;
            cur->iov_len -= left;
        }
    }
    atomic_store(&reader_got, got);
    atomic_store(&reader_done, 1);
    return NULL;
}

TEST_TIMEOUT(buffers_only_in_a_malloc_iovec_survive_collections_while_pinned, 60) {
    c_iov = calloc(PIPE_NBUF, sizeof *c_iov);
    REQUIRE(c_iov != NULL);
    REQUIRE(pipe(pipe_fds) == 0);
    pinned_buffers_in_malloc();
    scrub_stack();

    pthread_t reader;
    REQUIRE(pthread_create(&reader, NULL, pipe_reader, NULL) == 0);
    while (!atomic_load(&reader_started)) sleep_ms(1);
    sleep_ms(20); /* let it block in readv */
    for (int i = 0; i < 30; i++) {
        for (int k = 0; k < 32; k++) memset(gc_alloc_noscan(PIPE_BUF_BYTES), 0xEE, PIPE_BUF_BYTES);
        collect_hard();
    }
    gc_run_finalizers();
    sleep_ms(10);
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&buf_fin), 0);
    CHECK_EQ(atomic_load(&reader_done), 0); /* nothing to read yet */

    unsigned char *data = malloc(PIPE_TOTAL);
    REQUIRE(data != NULL);
    pattern_fill(data, PIPE_TOTAL, 4242);
    write_all(pipe_fds[1], data, PIPE_TOTAL);
    pthread_join(reader, NULL);
    CHECK_EQ(atomic_load(&reader_got), PIPE_TOTAL);
    for (int i = 0; i < PIPE_NBUF; i++) {
        CHECK(is_pinned(c_iov[i].iov_base));
        CHECKF(memcmp(c_iov[i].iov_base, data + (size_t)i * PIPE_BUF_BYTES, PIPE_BUF_BYTES) == 0,
               "buffer %d differs from what was written", i);
    }

    pinner_unpin(&pipe_pinner);
    for (int i = 0; i < PIPE_NBUF; i++) CHECK(!is_pinned(c_iov[i].iov_base));
    /* Only malloc memory refers to them now: garbage. */
    CHECK(collect_until(&buf_fin, PIPE_NBUF - 1, 20));
    CHECK_LE(atomic_load(&buf_fin), PIPE_NBUF);
    free(data);
    free(c_iov);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}
