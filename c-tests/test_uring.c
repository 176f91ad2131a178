/* io_uring with pinned GC buffers (the pattern of examples/uring_echo.c): the
 * kernel writes into 64 gc_alloc_noscan buffers that only the pins keep alive
 * (the program holds their addresses XOR-hidden in malloc memory; the
 * submissions carry them to the kernel) while other threads collect all the
 * time; every byte is checked; once unpinned, the buffers are garbage.
 *
 * Where io_uring is unavailable (io_uring_queue_init fails, or IORING_OP_READ is
 * missing; GCPIN_TEST_NO_URING=1 pretends so), each test prints a SKIP line with
 * the reason on stderr and runs the same checks with readv() as the fallback
 * instead: it then passes or fails on what the fallback did, nothing more. */
#include "check.h"

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <sys/uio.h>

enum { NBUFS = 64, CHUNK = 4096 };

/* The buffers: pinned through a global pinner, addresses only HIDE()den in
 * malloc memory. */
static gc_pinner buf_pinner;
static uintptr_t *hidden;
static atomic_int buf_fin;

static unsigned char *buffer(int i) { return UNHIDE(hidden[i]); }

static NOINLINE void make_pinned_buffers(void) {
    hidden = calloc(NBUFS, sizeof *hidden);
    REQUIRE(hidden != NULL);
    for (int i = 0; i < NBUFS; i++) {
        unsigned char *b = gc_alloc_noscan(CHUNK);
        REQUIRE(b != NULL);
        CHECK_STATUS(gc_set_finalizer(b, count_fin, &buf_fin), GC_OK);
        CHECK_STATUS(pinner_pin(&buf_pinner, b), GC_OK);
        hidden[i] = HIDE(b);
    }
}

/* Checks every byte; after unpinning, the buffers must become garbage. */
static void verify_then_release(uintptr_t seed0) {
    int bad = 0;
    for (int i = 0; i < NBUFS; i++) {
        unsigned char *b = buffer(i);
        if (!is_pinned(b) || gc_pin_count(b) != 1) bad++;
        if (!pattern_ok(b, CHUNK, seed0 + (uintptr_t)i)) {
            fprintf(stderr, "    buffer %d: contents differ from what the kernel read\n", i);
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    gc_run_finalizers();
    sleep_ms(10);
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&buf_fin), 0);
    pinner_unpin(&buf_pinner);
    for (int i = 0; i < NBUFS; i++) CHECK(!is_pinned(buffer(i)));
    /* Referenced only by hidden words in malloc memory now. */
    CHECK(collect_until(&buf_fin, NBUFS - 2, 20));
    CHECK_LE(atomic_load(&buf_fin), NBUFS);
    gc_stats st;
    gc_get_stats(&st);
    CHECK_EQ(st.pinned_objects, 0);
    free(hidden);
}

/* Collector threads: garbage of the buffers' size class, then a collection. */
enum { COLLECTORS = 2 };
static atomic_int bg_stop;
static atomic_long bg_collections;
static pthread_t bg[COLLECTORS];

static void *background_collector(void *arg) {
    (void)arg;
    while (!atomic_load(&bg_stop)) {
        for (int i = 0; i < 8; i++) {
            unsigned char *g = gc_alloc_noscan(CHUNK);
            if (g) memset(g, 0xEE, CHUNK);
        }
        gc_collect();
        atomic_fetch_add(&bg_collections, 1);
    }
    return NULL;
}

static void start_collectors(void) {
    for (int i = 0; i < COLLECTORS; i++) REQUIRE(pthread_create(&bg[i], NULL, background_collector, NULL) == 0);
    while (atomic_load(&bg_collections) < 2) sched_yield();
}

/* Waits until the collector threads have finished `n` more collections. */
static void collections_pass(long n) {
    long want = atomic_load(&bg_collections) + n;
    double end = check_now() + 10;
    while (atomic_load(&bg_collections) < want && check_now() < end) sched_yield();
    CHECK_GE(atomic_load(&bg_collections), want);
}

static void stop_collectors(void) {
    atomic_store(&bg_stop, 1);
    for (int i = 0; i < COLLECTORS; i++) pthread_join(bg[i], NULL);
}

static bool uring_open(struct io_uring *ring, char *why, size_t n) {
    if (getenv("GCPIN_TEST_NO_URING")) {
        snprintf(why, n, "GCPIN_TEST_NO_URING is set");
        return false;
    }
    int r = io_uring_queue_init(2 * NBUFS, ring, 0);
    if (r < 0) {
        snprintf(why, n, "io_uring_queue_init: %s", strerror(-r));
        return false;
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    bool ok = p && io_uring_opcode_supported(p, IORING_OP_READ);
    if (p) io_uring_free_probe(p);
    if (!ok) {
        snprintf(why, n, "the kernel's io_uring lacks IORING_OP_READ");
        io_uring_queue_exit(ring);
    }
    return ok;
}

static void skip_note(const char *test, const char *why) {
    fprintf(stderr, "SKIP %s (io_uring part): io_uring unavailable (%s); tested the readv fallback instead\n",
            test, why);
}

static void submit_read(struct io_uring *ring, int fd, int i, size_t done, uint64_t offset) {
    unsigned char *b = buffer(i);
    /* What goes to the kernel is pinned and holds no unpinned pointer. */
    CHECK(is_pinned(b));
    CHECK_STATUS(gc_check_pointer(b), GC_OK);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    REQUIRE(sqe != NULL);
    io_uring_prep_read(sqe, fd, b + done, (unsigned)(CHUNK - done), offset + done);
    io_uring_sqe_set_data64(sqe, (uint64_t)i);
}

static void submit(struct io_uring *ring) {
    int r;
    do r = io_uring_submit(ring);
    while (r == -EINTR || r == -EAGAIN);
    REQUIRE(r >= 0);
}

/* Reaps completions until all NBUFS reads are whole; short reads are
 * resubmitted for the rest. fds[i] and offsets[i] say where buffer i reads. */
static void reap_all(struct io_uring *ring, const int *fds, const uint64_t *offsets) {
    size_t done[NBUFS] = {0};
    int complete = 0;
    double end = check_now() + 20;
    while (complete < NBUFS) {
        REQUIRE(check_now() < end);
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
        int r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
        if (r == -EINTR || r == -ETIME || r == -EAGAIN) continue; /* EINTR: a collection stopped us */
        REQUIRE(r == 0);
        int i = (int)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        REQUIRE(i >= 0 && i < NBUFS);
        CHECKF(res > 0, "read into buffer %d: %s", i, res < 0 ? strerror(-res) : "end of file");
        if (res <= 0) {
            complete++;
            continue;
        }
        done[i] += (size_t)res;
        if (done[i] < CHUNK) {
            submit_read(ring, fds[i], i, done[i], offsets[i]);
            submit(ring);
        } else {
            complete++;
        }
    }
}

/* readv into buffer i from fd until CHUNK bytes (the fallback). */
static bool readv_chunk(int fd, int i) {
    size_t done = 0;
    while (done < CHUNK) {
        struct iovec iov = {buffer(i) + done, CHUNK - done};
        ssize_t n = readv(fd, &iov, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += (size_t)n;
    }
    return true;
}

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        REQUIRE(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* ---------------------------------------------------------------------------
 * Reads of a file into 64 pinned buffers while two threads collect. */

TEST_TIMEOUT(kernel_reads_a_file_into_64_pinned_buffers_while_threads_collect, 60) {
    char path[] = "/tmp/gcpin_test_uring_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    unsigned char *chunk = malloc(CHUNK);
    REQUIRE(chunk != NULL);
    for (int i = 0; i < NBUFS; i++) {
        pattern_fill(chunk, CHUNK, 1000 + (uintptr_t)i);
        write_all(fd, chunk, CHUNK);
    }
    free(chunk);

    make_pinned_buffers();
    scrub_stack();
    start_collectors();

    struct io_uring ring;
    char why[160];
    if (uring_open(&ring, why, sizeof why)) {
        int fds[NBUFS];
        uint64_t offsets[NBUFS];
        for (int i = 0; i < NBUFS; i++) {
            fds[i] = fd;
            offsets[i] = (uint64_t)i * CHUNK;
            submit_read(&ring, fd, i, 0, offsets[i]);
        }
        submit(&ring);
        collections_pass(2);
        reap_all(&ring, fds, offsets);
        io_uring_queue_exit(&ring);
    } else {
        skip_note("kernel_reads_a_file_into_64_pinned_buffers_while_threads_collect", why);
        REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
        for (int i = 0; i < NBUFS; i++) {
            CHECKF(readv_chunk(fd, i), "readv into buffer %d", i);
            if (i % 16 == 0) collections_pass(1);
        }
    }
    collections_pass(2);
    stop_collectors();
    close(fd);
    verify_then_release(1000);
}

/* ---------------------------------------------------------------------------
 * Reads posted on 64 empty pipes: the kernel holds the buffers through many
 * collections, then the data arrive and land in them. */

static int pipes[NBUFS][2];

/* The fallback: 8 threads (no gcpin calls: not registered, stacks not
 * scanned) block in readv on the pipes. */
enum { READERS = 8 };
static atomic_int readers_started, readers_failed;

static void *pipe_reader(void *arg) {
    int t = (int)(intptr_t)arg;
    atomic_fetch_add(&readers_started, 1);
    for (int i = t; i < NBUFS; i += READERS)
        if (!readv_chunk(pipes[i][0], i)) atomic_fetch_add(&readers_failed, 1);
    return NULL;
}

TEST_TIMEOUT(pending_reads_on_pipes_land_in_pinned_buffers_after_many_collections, 60) {
    for (int i = 0; i < NBUFS; i++) REQUIRE(pipe(pipes[i]) == 0);
    make_pinned_buffers();
    scrub_stack();
    start_collectors();

    struct io_uring ring;
    char why[160];
    bool uring = uring_open(&ring, why, sizeof why);
    pthread_t readers[READERS];
    int fds[NBUFS];
    uint64_t offsets[NBUFS];
    if (uring) {
        for (int i = 0; i < NBUFS; i++) {
            fds[i] = pipes[i][0];
            offsets[i] = 0;
            submit_read(&ring, fds[i], i, 0, 0);
        }
        submit(&ring);
    } else {
        skip_note("pending_reads_on_pipes_land_in_pinned_buffers_after_many_collections", why);
        for (int t = 0; t < READERS; t++)
            REQUIRE(pthread_create(&readers[t], NULL, pipe_reader, (void *)(intptr_t)t) == 0);
        while (atomic_load(&readers_started) < READERS) sleep_ms(1);
        sleep_ms(20); /* let them block */
    }

    /* Only the kernel (and the pins) refer to the buffers now. */
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 16; k++) memset(gc_alloc_noscan(CHUNK), 0xEE, CHUNK);
        collect_hard();
    }
    collections_pass(10);
    if (uring) {
        struct io_uring_cqe *cqe;
        CHECK_EQ(io_uring_peek_cqe(&ring, &cqe), -EAGAIN); /* nothing completed early */
    }
    gc_run_finalizers();
    CHECK_EQ(atomic_load(&buf_fin), 0);

    unsigned char *chunk = malloc(CHUNK);
    REQUIRE(chunk != NULL);
    for (int i = 0; i < NBUFS; i++) {
        pattern_fill(chunk, CHUNK, 2000 + (uintptr_t)i);
        write_all(pipes[i][1], chunk, CHUNK);
    }
    free(chunk);
    if (uring) {
        reap_all(&ring, fds, offsets);
        io_uring_queue_exit(&ring);
    } else {
        for (int t = 0; t < READERS; t++) pthread_join(readers[t], NULL);
        CHECK_EQ(atomic_load(&readers_failed), 0);
    }
    stop_collectors();
    for (int i = 0; i < NBUFS; i++) {
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
    verify_then_release(2000);
}
