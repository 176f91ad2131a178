/* Concurrent marking (GCPIN_CONCURRENT=1) while the kernel writes into the
 * heap: pointers and bytes that read(), readv() and io_uring reads put into GC
 * objects during a concurrent mark are all kept.
 *
 * Every test sets GCPIN_CONCURRENT=1 itself, so it marks concurrently in every
 * pass of the suite. The I/O tests build a live heap of 48 MiB of linked nodes
 * (less under heavy stress or valgrind: check_size), so that a concurrent mark
 * takes many milliseconds, and allocate garbage so that automatic cycles run
 * one after the other. Meanwhile each round allocates a fresh target T
 * (scanned, with a canary and a finalizer that records its id) and has the
 * kernel write T's address into a slot of a scanned holder: write(pipe, &T),
 * then a read of the pipe into the slot. Until the read has landed, T is also
 * in a global (`in_flight`), since a pointer in a pipe keeps nothing alive;
 * then the program forgets T (only a HIDE()den copy is kept, and the stack is
 * scrubbed), so the holder's slot is T's only reference. When a later round
 * overwrites a slot, its old T is recorded as released first: only released
 * targets may be finalized (a holder has 1024 slots, so a target wrongly freed
 * has had its finalizer run long before its slot comes round again). The
 * holders:
 *
 *   - reachable from a global (through the `reg` object, whose first fields
 *     are scanned first), so the mark has usually scanned them already when
 *     the kernel writes: the pointer is found only through the write tracker
 *     (the written page is rescanned);
 *   - only pinned (nothing else refers to them): the final pause scans every
 *     pinned object;
 *   - io_uring registered (fixed) buffers that are pinned scanned GC objects,
 *     one also reachable (so it is marked and scanned early), one only pinned:
 *     READ_FIXED writes through the pinned pages, which the tracker does not
 *     see; only the final pause's rescan of pinned objects finds them.
 *
 * and noscan buffers (pinned, and reachable) into which read() puts known
 * bytes. A round counts as overlapping the concurrent mark when a page of the
 * live list, which nothing writes, is write-protected (the uffd-wp bit of
 * /proc/self/pagemap) before and after it. A test runs until 5 concurrent
 * cycles were seen to end that way and 300 rounds overlapped marking (10 s at
 * most), then checks that at least 3 automatic cycles have completed,
 * mark_concurrent_ns has grown and some rounds overlapped marking; that no
 * target was finalized before it was released, every slot holds its target
 * with its canary, every noscan buffer holds its bytes and the live list is
 * intact.
 *
 * Where the kernel has no write tracker (found as gcpin looks: userfaultfd with
 * UFFD_FEATURE_WP_ASYNC and WP_UNPOPULATED, PAGEMAP_SCAN), cycles stop the
 * world: a test then prints a SKIP line for its concurrent part on stderr and
 * passes on what ran. Where io_uring is missing (or GCPIN_TEST_NO_URING=1), the
 * io_uring parts are skipped the same way. GCPIN_TEST_NO_TRACKER=1 hides
 * userfaultfd from the tests (a seccomp filter), to try the first case
 * on a kernel that has the tracker. CHECK_TIMES=1 also prints each I/O
 * test's figures (rounds, overlapping rounds, cycles, marking time).
 *
 * Then objects freed explicitly (GC_free) during a concurrent mark, after the
 * mark reached them, stay freed; last, the trace of concurrent cycles
 * (GCPIN_TRACE=1), gc_collect() staying stop-the-world, and the fallback when a
 * seccomp filter hides userfaultfd. */
#include "check.h"

#include <liburing.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>

/* ------------------------------------------------- the kernel's write tracker */

/* What gcpin's writetrack asks the kernel for (linux/userfaultfd.h and
 * linux/fs.h of Linux 6.7; Debian 12's headers predate part of it). */
#define TRK_UFFD_API 0xAAull
#define TRK_UFFD_USER_MODE_ONLY 1
#define TRK_FEATURE_WP_UNPOPULATED (1ull << 13)
#define TRK_FEATURE_WP_ASYNC (1ull << 15)
struct trk_uffdio_api {
    uint64_t api, features, ioctls;
};
#define TRK_UFFDIO_API _IOWR(0xAA, 0x3F, struct trk_uffdio_api)
#define TRK_USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
struct trk_page_region {
    uint64_t start, end, categories;
};
struct trk_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define TRK_PAGEMAP_SCAN _IOWR('f', 16, struct trk_pm_scan_arg)
#define TRK_PAGE_IS_WRITTEN (1ull << 1)
/* /proc/self/pagemap: the page's entry is write-protected by userfaultfd. */
#define PM_UFFD_WP (1ull << 57)

/* A userfaultfd as gcpin opens one: by the system call, user-mode faults
 * only, then plain, then through /dev/userfaultfd. -1 and errno on failure. */
static int open_userfaultfd(void) {
    int flags = O_CLOEXEC | O_NONBLOCK;
    long fd = syscall(SYS_userfaultfd, flags | TRK_UFFD_USER_MODE_ONLY);
    if (fd < 0) fd = syscall(SYS_userfaultfd, flags);
    if (fd >= 0) return (int)fd;
    int err = errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, TRK_USERFAULTFD_IOC_NEW, flags | TRK_UFFD_USER_MODE_ONLY);
        if (fd < 0) fd = ioctl(dev, TRK_USERFAULTFD_IOC_NEW, flags);
        close(dev);
        if (fd >= 0) return (int)fd;
    }
    errno = err;
    return -1;
}

/* True, with the reason in why, when the kernel lacks what gcpin's write
 * tracker needs (then GCPIN_CONCURRENT=1 cycles stop the world). */
static bool tracker_missing(char *why, size_t n) {
    int fd = open_userfaultfd();
    if (fd < 0) {
        snprintf(why, n, "userfaultfd: %s", strerror(errno));
        return true;
    }
    struct trk_uffdio_api api = {.api = TRK_UFFD_API};
    int r = ioctl(fd, TRK_UFFDIO_API, &api);
    int err = errno;
    close(fd);
    if (r != 0) {
        snprintf(why, n, "UFFDIO_API: %s", strerror(err));
        return true;
    }
    uint64_t want = TRK_FEATURE_WP_ASYNC | TRK_FEATURE_WP_UNPOPULATED;
    if ((api.features & want) != want) {
        snprintf(why, n, "userfaultfd lacks WP_ASYNC or WP_UNPOPULATED (features %#" PRIx64 ")", api.features);
        return true;
    }
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        snprintf(why, n, "/proc/self/pagemap: %s", strerror(errno));
        return true;
    }
    long page = sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    struct trk_page_region one;
    struct trk_pm_scan_arg arg = {
        .size = sizeof arg,
        .start = (uintptr_t)m,
        .end = (uintptr_t)m + (uintptr_t)page,
        .vec = (uintptr_t)&one,
        .vec_len = 1,
        .category_mask = TRK_PAGE_IS_WRITTEN,
        .return_mask = TRK_PAGE_IS_WRITTEN,
    };
    r = ioctl(pm, TRK_PAGEMAP_SCAN, &arg);
    err = errno;
    munmap(m, (size_t)page);
    close(pm);
    if (r < 0) {
        snprintf(why, n, "PAGEMAP_SCAN: %s", strerror(err));
        return true;
    }
    return false;
}

/* A seccomp filter that fails userfaultfd(2) and /dev/userfaultfd's ioctl
 * with ENOSYS, for this process and the threads it makes. False (with errno)
 * where filters cannot be installed. */
static bool hide_userfaultfd(void) {
    unsigned arg1 = (unsigned)offsetof(struct seccomp_data, args[1]);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    arg1 += 4; /* the request's low 32 bits */
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg1),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TRK_USERFAULTFD_IOC_NEW, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* GCPIN_TEST_NO_TRACKER=1: hide_userfaultfd, before the first gcpin call. */
static void maybe_hide_tracker(void) {
    if (getenv("GCPIN_TEST_NO_TRACKER") && !hide_userfaultfd())
        fprintf(stderr, "GCPIN_TEST_NO_TRACKER: no seccomp filter (%s)\n", strerror(errno));
}

/* --------------------------------------------------------------- the heap */

/* The live heap: a list of 64-byte nodes. */
struct node {
    struct node *next;
    uint64_t id, check;
    uint64_t pad[5];
};

#define LIVE_BYTES (48u << 20)

static uint64_t node_check(uint64_t id) { return mix(id) | 1; }

/* A target: its address is what the kernel writes. */
struct target {
    uint64_t id, canary;
    uint64_t fill[4];
};

static uint64_t canary_of(uint64_t id) { return mix(id ^ 0xC0FFEEull) | 1; }

/* A scanned holder of NSLOTS pointers the kernel writes. Many, so that a
 * target stays in its slot for thousands of rounds: a target wrongly freed by
 * a cycle has its finalizer run long before the program releases it. */
enum { NSLOTS = 1024 };
struct holder {
    void *slot[NSLOTS];
};

/* Registered buffers are large objects (a span each: no other object on their
 * pages, which nothing but the kernel writes); their first NSLOTS words are
 * the slots. */
enum { FIXED_BYTES = 64 << 10 };

/* Noscan buffers that read() fills with a pattern. */
enum { NBYTES = 4, BYTES_LEN = 4096 };

/* The places the kernel writes pointers into. */
enum spot_id {
    S_READ_REACH,
    S_READ_PIN,
    S_READV_REACH,
    S_READV_PIN,
    S_URING_REACH,
    S_URING_PIN,
    S_FIXED_REACH,
    S_FIXED_PIN,
    NSPOTS
};
static const char *const spot_name[NSPOTS] = {
    "read() into a reachable holder",  "read() into a pinned holder",
    "readv() into a reachable holder", "readv() into a pinned holder",
    "IORING_OP_READ into a reachable holder", "IORING_OP_READ into a pinned holder",
    "READ_FIXED into a pinned, reachable registered buffer", "READ_FIXED into a pinned registered buffer",
};

/* What the program reaches: the first fields are scanned first (an object is
 * scanned from its last word, the mark stack is LIFO), the list last. */
struct registry {
    void **victims;                   /* objects to free during a mark (see its test) */
    void *reach[NSPOTS];              /* the reachable holders (NULL for the others) */
    unsigned char *bytes[NBYTES];     /* noscan buffers, merely reachable */
    struct node *list;
};
static struct registry *reg;

/* Everything the test remembers lives in malloc memory, which is not scanned:
 * object addresses only HIDE()den, ids as numbers. */
#define MAX_IDS (1 << 17)
struct book {
    uintptr_t spot[NSPOTS];          /* HIDE(holder) */
    int ids[NSPOTS][NSLOTS];         /* the target last written into each slot; -1: none */
    int next_slot[NSPOTS];
    long landed[NSPOTS];
    uintptr_t bytes[2 * NBYTES];     /* HIDE(buffer): [0, NBYTES) reachable, then pinned */
    uint64_t bytes_seed[2 * NBYTES]; /* the pattern last read into each; 0: none */
    long bytes_landed;
    uintptr_t target[MAX_IDS];       /* HIDE(T) */
    atomic_uchar released[MAX_IDS];  /* its slot was overwritten: it may be finalized */
    atomic_uchar finalized[MAX_IDS]; /* how often its finalizer ran */
    atomic_uchar early[MAX_IDS];     /* finalized while not released */
    int nids;
    uintptr_t probe;                 /* HIDE(a page of the list) */
    long nodes;
    unsigned char chunk[BYTES_LEN];  /* what round_bytes writes to the pipe */
};
static struct book *bk;

/* The targets whose pointer is on its way through a pipe: real pointers, in
 * a root, so that a cycle meanwhile keeps them. */
static void *volatile in_flight[2];

static gc_pinner pins;
static int pipefd[2];
static int pagemap_fd = -1;

static void target_fin(void *obj, void *arg) {
    (void)obj;
    int id = (int)(intptr_t)arg;
    if (id < 0 || id >= MAX_IDS) return;
    atomic_fetch_add(&bk->finalized[id], 1);
    if (!atomic_load(&bk->released[id])) atomic_store(&bk->early[id], 1);
}

static void *spot_obj(int s) { return UNHIDE(bk->spot[s]); }
static void **slot_addr(int s, int k) { return &((void **)spot_obj(s))[k]; }
static unsigned char *bytes_buf(int b) { return UNHIDE(bk->bytes[b]); }

static NOINLINE struct node *build_list(long n) {
    struct node *head = NULL;
    for (long i = n; i-- > 0;) {
        struct node *x = gc_alloc(sizeof *x);
        REQUIRE(x != NULL);
        x->next = head;
        x->id = (uint64_t)i;
        x->check = node_check((uint64_t)i);
        head = x;
    }
    return head;
}

static long walk_list(void) {
    long i = 0;
    for (struct node *x = reg->list; x; x = x->next, i++)
        if (x->id != (uint64_t)i || x->check != node_check((uint64_t)i)) return -i - 1;
    return i;
}

/* Whether the list's probe page is write-protected now: a concurrent cycle is
 * between its protect and its unprotect. */
static bool heap_protected(void) {
    if (pagemap_fd < 0) return false;
    uint64_t e = 0;
    uintptr_t page = (uintptr_t)UNHIDE(bk->probe) / (uintptr_t)sysconf(_SC_PAGESIZE);
    if (pread(pagemap_fd, &e, sizeof e, (off_t)(page * sizeof e)) != (ssize_t)sizeof e) return false;
    return (e & PM_UFFD_WP) != 0;
}

static NOINLINE void *alloc_holder(size_t size, bool pinned) {
    void *h = gc_alloc(size);
    REQUIRE(h != NULL);
    if (pinned) CHECK_STATUS(pinner_pin(&pins, h), GC_OK);
    return h;
}

/* The registry, the holders (the registered buffers among them), the noscan
 * buffers, the list, the pipe. */
static NOINLINE void build_heap(void) {
    bk = calloc(1, sizeof *bk);
    REQUIRE(bk != NULL);
    memset(bk->ids, 0xFF, sizeof bk->ids);
    reg = gc_alloc(sizeof *reg);
    REQUIRE(reg != NULL);
    for (int s = 0; s < NSPOTS; s++) {
        bool reach = s == S_READ_REACH || s == S_READV_REACH || s == S_URING_REACH || s == S_FIXED_REACH;
        bool pinned = !reach || s == S_FIXED_REACH;
        bool fixed = s == S_FIXED_REACH || s == S_FIXED_PIN;
        void *h = alloc_holder(fixed ? FIXED_BYTES : sizeof(struct holder), pinned);
        if (reach) reg->reach[s] = h;
        bk->spot[s] = HIDE(h);
    }
    for (int b = 0; b < 2 * NBYTES; b++) {
        unsigned char *buf = gc_alloc_noscan(BYTES_LEN);
        REQUIRE(buf != NULL);
        if (b < NBYTES)
            reg->bytes[b] = buf;
        else
            CHECK_STATUS(pinner_pin(&pins, buf), GC_OK);
        bk->bytes[b] = HIDE(buf);
    }
    bk->nodes = (long)check_size(LIVE_BYTES / sizeof(struct node));
    reg->list = build_list(bk->nodes);
    struct node *mid = reg->list;
    for (long i = 0; i < bk->nodes / 2; i++) mid = mid->next;
    bk->probe = HIDE((uintptr_t)mid & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1));
    REQUIRE(pipe2(pipefd, O_CLOEXEC) == 0);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

/* A new target with its finalizer; the caller puts it in in_flight. */
static NOINLINE struct target *new_target(void) {
    REQUIRE(bk->nids < MAX_IDS);
    int id = bk->nids++;
    struct target *t = gc_alloc(sizeof *t);
    REQUIRE(t != NULL);
    t->id = (uint64_t)id;
    t->canary = canary_of((uint64_t)id);
    fill_words(t->fill, 4, (uint64_t)id + 1);
    CHECK_STATUS(gc_set_finalizer(t, target_fin, (void *)(intptr_t)id), GC_OK);
    bk->target[id] = HIDE(t);
    return t;
}

static bool target_intact(const struct target *t, int id) {
    return t->id == (uint64_t)id && t->canary == canary_of((uint64_t)id) && words_intact(t->fill, 4, (uint64_t)id + 1);
}

/* The slot of spot s the next round writes: its old target is released now,
 * before the kernel overwrites it. */
static int take_slot(int s) {
    int k = bk->next_slot[s];
    bk->next_slot[s] = (k + 1) % NSLOTS;
    int old = bk->ids[s][k];
    if (old >= 0) atomic_store(&bk->released[old], 1);
    bk->ids[s][k] = -1;
    return k;
}

/* The kernel wrote target id into slot k of spot s. */
static void landed(int s, int k, int id) {
    void *v = *(void *volatile *)slot_addr(s, k);
    CHECKF(v == UNHIDE(bk->target[id]), "%s: slot %d holds %p, not target %d", spot_name[s], k, v, id);
    bk->ids[s][k] = id;
    bk->landed[s]++;
}

static void write_full(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        REQUIRE(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

static void read_full(int fd, void *p, size_t n) {
    unsigned char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        REQUIRE(r > 0);
        c += r;
        n -= (size_t)r;
    }
}

/* ----------------------------------------------------------- the rounds */

/* read(): a target's address into spot s. */
static NOINLINE void round_read(int s) {
    struct target *t = new_target();
    int id = (int)t->id;
    in_flight[0] = t;
    write_full(pipefd[1], &t, sizeof t);
    t = NULL;
    escape(&t);
    int k = take_slot(s);
    read_full(pipefd[0], slot_addr(s, k), sizeof(void *));
    landed(s, k, id);
    in_flight[0] = NULL;
}

/* readv(): two targets' addresses scattered into a reachable and a pinned
 * holder by one call. */
static NOINLINE void round_readv(void) {
    struct target *t[2] = {new_target(), NULL};
    in_flight[0] = t[0];
    t[1] = new_target();
    in_flight[1] = t[1];
    int id0 = (int)t[0]->id, id1 = (int)t[1]->id;
    write_full(pipefd[1], t, sizeof t);
    t[0] = t[1] = NULL;
    escape(t);
    int k0 = take_slot(S_READV_REACH), k1 = take_slot(S_READV_PIN);
    struct iovec iov[2] = {{slot_addr(S_READV_REACH, k0), sizeof(void *)}, {slot_addr(S_READV_PIN, k1), sizeof(void *)}};
    ssize_t r;
    do r = readv(pipefd[0], iov, 2);
    while (r < 0 && errno == EINTR);
    REQUIRE(r == 2 * (ssize_t)sizeof(void *)); /* 16 bytes in the pipe: one readv takes them */
    landed(S_READV_REACH, k0, id0);
    landed(S_READV_PIN, k1, id1);
    in_flight[0] = in_flight[1] = NULL;
}

/* io_uring, when there is one. */
static struct io_uring ring;
static bool have_uring, have_fixed;
static char uring_why[200];

static void uring_open(bool fixed) {
    if (getenv("GCPIN_TEST_NO_URING")) {
        snprintf(uring_why, sizeof uring_why, "GCPIN_TEST_NO_URING is set");
        return;
    }
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        snprintf(uring_why, sizeof uring_why, "io_uring_queue_init: %s", strerror(-r));
        return;
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    bool read_ok = p && io_uring_opcode_supported(p, IORING_OP_READ);
    bool fixed_ok = p && io_uring_opcode_supported(p, IORING_OP_READ_FIXED);
    if (p) io_uring_free_probe(p);
    if (!read_ok) {
        snprintf(uring_why, sizeof uring_why, "the kernel's io_uring lacks IORING_OP_READ");
        io_uring_queue_exit(&ring);
        return;
    }
    have_uring = true;
    if (!fixed) return;
    if (!fixed_ok) {
        snprintf(uring_why, sizeof uring_why, "the kernel's io_uring lacks IORING_OP_READ_FIXED");
        return;
    }
    /* Both registered buffers are pinned GC objects (pinned before the kernel
     * pins their pages: the pin keeps them where they are). */
    struct iovec iov[2] = {{spot_obj(S_FIXED_REACH), FIXED_BYTES}, {spot_obj(S_FIXED_PIN), FIXED_BYTES}};
    CHECK(is_pinned(iov[0].iov_base) && is_pinned(iov[1].iov_base));
    r = io_uring_register_buffers(&ring, iov, 2);
    if (r < 0) {
        snprintf(uring_why, sizeof uring_why, "io_uring_register_buffers: %s", strerror(-r));
        return;
    }
    have_fixed = true;
}

static void uring_close(void) {
    if (have_fixed) io_uring_unregister_buffers(&ring);
    if (have_uring) io_uring_queue_exit(&ring);
    have_uring = have_fixed = false;
}

static int uring_wait(void) {
    struct io_uring_cqe *cqe;
    int r;
    do r = io_uring_wait_cqe(&ring, &cqe);
    while (r == -EINTR || r == -EAGAIN || r == -ETIME);
    REQUIRE(r == 0);
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

static void uring_submit(void) {
    int r;
    do r = io_uring_submit(&ring);
    while (r == -EINTR || r == -EAGAIN);
    REQUIRE(r == 1);
}

/* IORING_OP_READ (or READ_FIXED into registered buffer `buf`) of a target's
 * address into spot s, in one of three ways by `mode`: the data already in the
 * pipe (completed in the submitting call), the same on an io-wq worker
 * (IOSQE_ASYNC), or the read posted on the empty pipe first and completed
 * when the data arrive. */
static NOINLINE void round_uring(int s, int buf, int mode) {
    struct target *t = new_target();
    int id = (int)t->id;
    in_flight[0] = t;
    int k = take_slot(s);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    REQUIRE(sqe != NULL);
    if (buf >= 0)
        io_uring_prep_read_fixed(sqe, pipefd[0], slot_addr(s, k), sizeof(void *), (uint64_t)-1, buf);
    else
        io_uring_prep_read(sqe, pipefd[0], slot_addr(s, k), sizeof(void *), (uint64_t)-1);
    if (mode == 1) sqe->flags |= IOSQE_ASYNC;
    if (mode == 2) {
        uring_submit();
        write_full(pipefd[1], &t, sizeof t);
    } else {
        write_full(pipefd[1], &t, sizeof t);
        uring_submit();
    }
    t = NULL;
    escape(&t);
    int res = uring_wait();
    REQUIRE(res == (int)sizeof(void *));
    landed(s, k, id);
    in_flight[0] = NULL;
}

/* read(): a known pattern into noscan buffer b, after checking the last. */
static NOINLINE void round_bytes(int b, uint64_t seed) {
    unsigned char *buf = bytes_buf(b);
    if (bk->bytes_seed[b]) CHECKF(pattern_ok(buf, BYTES_LEN, bk->bytes_seed[b]), "noscan buffer %d lost its bytes", b);
    pattern_fill(bk->chunk, BYTES_LEN, seed);
    write_full(pipefd[1], bk->chunk, BYTES_LEN);
    read_full(pipefd[0], buf, BYTES_LEN);
    bk->bytes_seed[b] = seed;
    bk->bytes_landed++;
    CHECKF(pattern_ok(buf, BYTES_LEN, seed), "noscan buffer %d: read() left other bytes", b);
}

/* Garbage of the targets', holders' and buffers' size classes, filled, so
 * that a slot freed too early is soon reused and overwritten; and a larger
 * block, so that cycles come often. */
static NOINLINE void garbage(void) {
    for (int i = 0; i < 8; i++) {
        void *g = gc_alloc(sizeof(struct target));
        if (g) memset(g, 0xEE, sizeof(struct target));
    }
    void *h = gc_alloc(sizeof(struct holder));
    if (h) memset(h, 0xEE, sizeof(struct holder));
    void *b = gc_alloc_noscan(BYTES_LEN);
    if (b) memset(b, 0xEE, BYTES_LEN);
    void *big = gc_alloc_noscan(32 << 10);
    if (big) memset(big, 0xEE, 32 << 10);
}

/* ------------------------------------------------------------ the driver */

enum {
    K_READ = 1,
    K_READV = 2,
    K_URING = 4,
    K_FIXED = 8,
    K_BYTES = 16,
};

struct outcome {
    long rounds, overlapped;
    uint64_t cycles, mark_ns;
    double secs;
};

/* Stops when 5 concurrent cycles were seen to end and 300 rounds overlapped
 * a concurrent mark (or, without a tracker: 3 cycles and 2000 rounds), or
 * after 10 s; at least 3 cycles must have completed. */
#define MIN_CYCLES 3
#define MIN_WINDOWS 5
#define MIN_OVERLAP 300
#define MIN_ROUNDS 2000
#define DEADLINE_S 10.0

static void one_round(int kinds, long r) {
    int pick[5], n = 0;
    if (kinds & K_READ) pick[n++] = K_READ;
    if (kinds & K_READV) pick[n++] = K_READV;
    if ((kinds & K_URING) && have_uring) pick[n++] = K_URING;
    if ((kinds & K_FIXED) && have_fixed) pick[n++] = K_FIXED;
    if (kinds & K_BYTES) pick[n++] = K_BYTES;
    REQUIRE(n > 0);
    long q = r / n;
    switch (pick[r % n]) {
    case K_READ: round_read(q % 2 ? S_READ_PIN : S_READ_REACH); break;
    case K_READV: round_readv(); break;
    case K_URING: round_uring(q % 2 ? S_URING_PIN : S_URING_REACH, -1, (int)(q / 2 % 3)); break;
    case K_FIXED: round_uring(q % 2 ? S_FIXED_PIN : S_FIXED_REACH, (int)(q % 2), (int)(q / 2 % 3)); break;
    case K_BYTES: round_bytes((int)(q % (2 * NBYTES)), (uint64_t)r + 1); break;
    }
}

static NOINLINE void run_rounds(int kinds, struct outcome *out) {
    memset(out, 0, sizeof *out);
    scrub_stack();
    gc_stats s0 = check_stats();
    double start = check_now();
    bool tracked = !tracker_missing((char[160]){0}, 160);
    bool was = false;
    long windows = 0; /* concurrent cycles seen to end (the probe page unprotected again) */
    for (long r = 0;; r++) {
        bool before = heap_protected();
        one_round(kinds, r);
        garbage();
        scrub_stack();
        bool after = heap_protected();
        if (before && after) out->overlapped++;
        windows += (was && !before) + (before && !after);
        was = after;
        out->rounds++;
        if (r % 128 != 127) continue;
        out->secs = check_now() - start;
        /* gc_get_stats takes the world lock, so it waits for the end of a
         * running cycle. Asked in this loop it would lock into phase with the
         * cycles (each is asked for at the same round after the last) and
         * block the rounds through every mark; so with a tracker the cycles
         * are counted by the probe page instead, and the statistics read
         * after the loop. */
        bool enough;
        if (tracked) {
            enough = windows >= MIN_WINDOWS && out->overlapped >= MIN_OVERLAP;
        } else {
            gc_stats s = check_stats();
            enough = s.num_gc - s0.num_gc >= MIN_CYCLES && out->rounds >= MIN_ROUNDS;
        }
        if (enough || out->secs > DEADLINE_S || bk->nids + 2 > MAX_IDS) break;
    }
    gc_stats s = check_stats();
    out->cycles = s.num_gc - s0.num_gc;
    out->mark_ns = s.mark_concurrent_ns - s0.mark_concurrent_ns;
    out->secs = check_now() - start;
    if (getenv("CHECK_TIMES"))
        fprintf(stderr, "    %ld rounds, %ld during concurrent marking, %" PRIu64 " cycles, %.1f ms marked concurrently, %.2f s\n",
                out->rounds, out->overlapped, out->cycles, (double)out->mark_ns / 1e6, out->secs);
}

/* After the rounds: every cycle over (gc_collect waits for a running one),
 * the queued finalizers run; then every check of the top of this file. */
static NOINLINE void verify_all(void) {
    scrub_stack();
    gc_collect();
    for (int i = 0; i < 5; i++) {
        gc_run_finalizers();
        sleep_ms(10);
    }
    int early = 0, twice = 0;
    for (int id = 0; id < bk->nids; id++) {
        if (atomic_load(&bk->early[id])) {
            if (early < 10) fprintf(stderr, "    target %d was finalized while a holder still had it\n", id);
            early++;
        }
        if (atomic_load(&bk->finalized[id]) > 1) twice++;
    }
    CHECKF(early == 0, "%d of %d targets finalized while still referenced", early, bk->nids);
    CHECK_EQ(twice, 0);
    for (int s = 0; s < NSPOTS; s++) {
        int bad = 0;
        for (int k = 0; k < NSLOTS; k++) {
            int id = bk->ids[s][k];
            if (id < 0) continue;
            struct target *t = *(void *volatile *)slot_addr(s, k);
            if (t != UNHIDE(bk->target[id]) || !target_intact(t, id) || atomic_load(&bk->finalized[id])) bad++;
        }
        CHECKF(bad == 0, "%s: %d slots lost their target or its canary", spot_name[s], bad);
    }
    for (int b = 0; b < 2 * NBYTES; b++)
        if (bk->bytes_seed[b])
            CHECKF(pattern_ok(bytes_buf(b), BYTES_LEN, bk->bytes_seed[b]), "noscan buffer %d (%s) lost its bytes", b,
                   b < NBYTES ? "reachable" : "pinned");
    long n = walk_list();
    CHECKF(n == bk->nodes, "the live list is broken at node %ld", n < 0 ? -n - 1 : n);
    CHECK_STATUS(gc_verify_heap(), GC_OK);
}

/* Whether the rounds overlapped concurrent marking; where the kernel has no
 * write tracker, a SKIP line instead (the rest of the test stands). */
static void expect_concurrent(const char *test, const struct outcome *o) {
    CHECKF(o->cycles >= MIN_CYCLES, "only %" PRIu64 " automatic cycles in %.1f s", o->cycles, o->secs);
    char why[160];
    if (tracker_missing(why, sizeof why)) {
        CHECK_EQ(o->mark_ns, 0);
        fprintf(stderr, "SKIP %s (concurrent part): the kernel has no write tracker here (%s); ran with stop-the-world cycles\n",
                test, why);
        return;
    }
    CHECKF(o->mark_ns > 0, "mark_concurrent_ns stayed 0 over %" PRIu64 " cycles, though the kernel has a write tracker",
           o->cycles);
    CHECKF(o->overlapped > 0, "none of %ld rounds ran while a concurrent cycle had the heap protected", o->rounds);
}

static void uring_skip_note(const char *test) {
    fprintf(stderr, "SKIP %s (io_uring part): io_uring unavailable (%s)\n", test, uring_why);
}

/* One I/O test: the heap, io_uring if asked for, the rounds, the checks. */
static void io_test(const char *test, int kinds) {
    maybe_hide_tracker();
    REQUIRE(setenv("GCPIN_CONCURRENT", "1", 1) == 0);
    build_heap();
    if (kinds & (K_URING | K_FIXED)) {
        uring_open(kinds & K_FIXED);
        if (!have_uring || ((kinds & K_FIXED) && !have_fixed)) uring_skip_note(test);
        if ((kinds & ~(K_URING | K_FIXED)) == 0 && !have_uring) return;
        if (kinds == K_FIXED && !have_fixed) return;
    }
    struct outcome o;
    run_rounds(kinds, &o);
    verify_all();
    expect_concurrent(test, &o);
    for (int s = 0; s < NSPOTS; s++) {
        bool asked = ((kinds & K_READ) && (s == S_READ_REACH || s == S_READ_PIN)) ||
                     ((kinds & K_READV) && (s == S_READV_REACH || s == S_READV_PIN)) ||
                     ((kinds & K_URING) && have_uring && (s == S_URING_REACH || s == S_URING_PIN)) ||
                     ((kinds & K_FIXED) && have_fixed && (s == S_FIXED_REACH || s == S_FIXED_PIN));
        if (asked) CHECKF(bk->landed[s] > 0, "%s: no round ran", spot_name[s]);
    }
    if (kinds & K_BYTES) CHECK_GT(bk->bytes_landed, 0);
    uring_close();
    pinner_unpin(&pins);
}

/* ---------------------------------------------------------------------------
 * The kernel writes pointers and bytes into the heap during concurrent marks. */

TEST_TIMEOUT(read_puts_pointers_into_reachable_and_pinned_holders_during_concurrent_marking, 60) {
    io_test("read_puts_pointers_into_reachable_and_pinned_holders_during_concurrent_marking", K_READ);
}

TEST_TIMEOUT(readv_scatters_pointers_across_two_holders_during_concurrent_marking, 60) {
    io_test("readv_scatters_pointers_across_two_holders_during_concurrent_marking", K_READV);
}

TEST_TIMEOUT(uring_read_puts_pointers_into_reachable_and_pinned_holders_during_concurrent_marking, 60) {
    io_test("uring_read_puts_pointers_into_reachable_and_pinned_holders_during_concurrent_marking", K_URING);
}

/* The tracker does not see these writes: the final pause's rescan of pinned
 * objects must find the pointers. */
TEST_TIMEOUT(uring_read_fixed_puts_pointers_into_pinned_registered_buffers_during_concurrent_marking, 60) {
    io_test("uring_read_fixed_puts_pointers_into_pinned_registered_buffers_during_concurrent_marking", K_FIXED);
}

TEST_TIMEOUT(read_puts_bytes_into_pinned_and_reachable_noscan_buffers_during_concurrent_marking, 60) {
    io_test("read_puts_bytes_into_pinned_and_reachable_noscan_buffers_during_concurrent_marking", K_BYTES);
}

TEST_TIMEOUT(every_kind_of_kernel_write_interleaved_during_concurrent_marking, 60) {
    io_test("every_kind_of_kernel_write_interleaved_during_concurrent_marking",
            K_READ | K_READV | K_URING | K_FIXED | K_BYTES);
}

/* ---------------------------------------------------------------------------
 * An explicit free (libgc's GC_free, which libgcpin exports) during a
 * concurrent mark, of objects the mark has already reached: the sweep that
 * ends the cycle must not make them allocated again. */
void GC_free(void *p);
void *GC_base(void *p);

enum { NVICTIMS = 1000 };

static NOINLINE void make_victims(void) {
    for (int i = 0; i < NVICTIMS; i++) {
        reg->victims[i] = gc_alloc(48);
        REQUIRE(reg->victims[i] != NULL);
    }
}

/* Frees every victim, keeping their addresses only hidden in `hidden`. */
static NOINLINE void free_victims(uintptr_t *hidden) {
    for (int i = 0; i < NVICTIMS; i++) {
        hidden[i] = HIDE(reg->victims[i]);
        GC_free(reg->victims[i]);
        reg->victims[i] = NULL;
    }
}

/* Allocates garbage until the probe page is protected (a concurrent cycle
 * has begun) or `seconds` pass. */
static bool garbage_until_protected(double seconds) {
    double end = check_now() + seconds;
    while (!heap_protected()) {
        if (check_now() > end) return false;
        garbage();
    }
    return true;
}

TEST_TIMEOUT(objects_freed_explicitly_during_a_concurrent_mark_stay_freed, 60) {
    maybe_hide_tracker();
    REQUIRE(setenv("GCPIN_CONCURRENT", "1", 1) == 0);
    build_heap();
    char why[160];
    if (tracker_missing(why, sizeof why)) {
        fprintf(stderr, "SKIP objects_freed_explicitly_during_a_concurrent_mark_stay_freed: the kernel has no "
                        "write tracker here (%s)\n", why);
        return;
    }
    reg->victims = gc_alloc(NVICTIMS * sizeof(void *));
    REQUIRE(reg->victims != NULL);
    static uintptr_t hidden[NVICTIMS];
    int tried = 0;
    for (int attempt = 0; attempt < 10 && tried < 3; attempt++) {
        /* Between cycles: victims the next cycle reaches first (the first
         * field of `reg`). */
        double end = check_now() + 5;
        while (heap_protected() && check_now() < end) sleep_ms(1);
        make_victims();
        if (!garbage_until_protected(5)) break;
        sleep_ms(3); /* the mark is past the victims now (it reaches them first) */
        free_victims(hidden);
        if (!heap_protected()) continue; /* the cycle ended first: try again */
        tried++;
        end = check_now() + 5;
        while (heap_protected() && check_now() < end) sleep_ms(1);
        int kept = 0;
        for (int i = 0; i < NVICTIMS; i++) kept += GC_base(UNHIDE(hidden[i])) != NULL;
        CHECKF(kept == 0, "%d of %d objects freed during a concurrent mark are allocated after its sweep", kept,
               NVICTIMS);
    }
    if (tried == 0)
        fprintf(stderr, "SKIP objects_freed_explicitly_during_a_concurrent_mark_stay_freed: no free landed inside a "
                        "concurrent mark (the heap is small: marks are short)\n");
    CHECK_STATUS(gc_verify_heap(), GC_OK);
    pinner_unpin(&pins);
}

/* ---------------------------------------------------------------------------
 * The trace, gc_collect(), and the fallback without a tracker. */

/* fd 2 goes to a memory file from here on; returns the saved fd 2. */
static int stderr_to(int memfd) {
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0 && dup2(memfd, 2) == 2);
    return saved;
}

/* Puts fd 2 back; returns what was written to memfd (malloc'd, NUL-ended). */
static char *stderr_back(int saved, int memfd) {
    fflush(stderr);
    REQUIRE(dup2(saved, 2) == 2);
    close(saved);
    off_t len = lseek(memfd, 0, SEEK_END);
    REQUIRE(len >= 0);
    char *text = malloc((size_t)len + 1);
    REQUIRE(text != NULL);
    REQUIRE(pread(memfd, text, (size_t)len, 0) == len);
    text[len] = 0;
    return text;
}

/* The number of lines of `text` that contain `needle`. */
static int lines_with(const char *text, const char *needle) {
    int n = 0;
    for (const char *l = text; *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        const char *hit = strstr(l, needle);
        if (hit && hit < l + len) n++;
        l += len + (end ? 1 : 0);
    }
    return n;
}

/* Whether a trace line ends as a concurrent cycle's does:
 * ", concurrent: first pause X ms, marked Y ms with the world running". */
static int concurrent_lines(const char *text) {
    int n = 0;
    for (const char *l = text; (l = strstr(l, ", concurrent: first pause ")) != NULL; l++) {
        double first, marked;
        char tail[32] = {0};
        if (sscanf(l, ", concurrent: first pause %lf ms, marked %lf ms with the world %31[a-z]", &first, &marked, tail) ==
                3 &&
            strcmp(tail, "running") == 0 && first >= 0 && marked >= 0)
            n++;
    }
    return n;
}

/* A live heap of 16 MiB of 4 KiB nodes (few allocations, so GCPIN_STRESS adds
 * few cycles), then 64 KiB garbage blocks until `cycles` automatic cycles
 * have completed (or 10 s). */
struct big {
    struct big *next;
    uint64_t fill[511];
};
static struct big *big_list;

static NOINLINE void live_and_garbage(uint64_t cycles) {
    size_t n = check_size((16u << 20) / sizeof(struct big));
    for (size_t i = 0; i < n; i++) {
        struct big *b = gc_alloc(sizeof *b);
        REQUIRE(b != NULL);
        fill_words(b->fill, 511, i);
        b->next = big_list;
        big_list = b;
    }
    gc_stats s0 = check_stats();
    double end = check_now() + 10;
    while (check_stats().num_gc < s0.num_gc + cycles && check_now() < end) {
        void *g = gc_alloc_noscan(64 << 10);
        if (g) memset(g, 0xEE, 64 << 10);
    }
    CHECK_GE(check_stats().num_gc, s0.num_gc + cycles);
}

static bool big_list_intact(void) {
    size_t n = check_size((16u << 20) / sizeof(struct big)), i = n;
    for (struct big *b = big_list; b; b = b->next)
        if (!words_intact(b->fill, 511, --i)) return false;
    return i == 0;
}

/* Waits until no cycle has ended for 100 ms: the last one asked for is over. */
static void quiesce(void) {
    double end = check_now() + 5;
    gc_stats last = check_stats();
    double since = check_now();
    while (check_now() < end) {
        sleep_ms(10);
        gc_stats s = check_stats();
        if (s.num_gc != last.num_gc || s.mark_concurrent_ns != last.mark_concurrent_ns) {
            last = s;
            since = check_now();
        } else if (check_now() - since > 0.1) {
            return;
        }
    }
}

TEST_TIMEOUT(trace_shows_concurrent_cycles_and_gc_collect_stays_stop_the_world, 60) {
    maybe_hide_tracker();
    REQUIRE(setenv("GCPIN_CONCURRENT", "1", 1) == 0);
    REQUIRE(setenv("GCPIN_TRACE", "1", 1) == 0);
    int memfd = memfd_create("trace", MFD_CLOEXEC);
    REQUIRE(memfd >= 0);
    int saved = stderr_to(memfd);
    live_and_garbage(4);
    quiesce();
    off_t before_collect = lseek(memfd, 0, SEEK_END);
    gc_stats s0 = check_stats();
    gc_collect();
    gc_stats s1 = check_stats();
    char *text = stderr_back(saved, memfd);
    const char *collect_part = text + before_collect;

    CHECK_EQ(s1.num_gc, s0.num_gc + 1);
    CHECK_EQ(s1.mark_concurrent_ns, s0.mark_concurrent_ns); /* gc_collect() stops the world */
    CHECK_GT(s1.pause_total_ns, s0.pause_total_ns);
    CHECK_EQ(lines_with(collect_part, "gcpin: gc "), 1);
    CHECK_EQ(lines_with(collect_part, ", concurrent"), 0);
    CHECK(big_list_intact());

    char why[160];
    if (tracker_missing(why, sizeof why)) {
        CHECK_EQ(s1.mark_concurrent_ns, 0);
        CHECK_EQ(lines_with(text, "the kernel cannot track writes to the heap"), 1);
        fprintf(stderr, "SKIP trace_shows_concurrent_cycles_and_gc_collect_stays_stop_the_world (concurrent part): "
                        "the kernel has no write tracker here (%s)\n", why);
    } else {
        CHECK_GT(s0.mark_concurrent_ns, 0);
        /* The first cycle may stop the world: the program can outrun the
         * collector thread while it starts. */
        CHECKF(concurrent_lines(text) >= 2, "%d concurrent cycle lines in the trace: \"%.600s\"", concurrent_lines(text),
               text);
        CHECK_EQ(lines_with(text, "cannot track writes"), 0);
    }
    free(text);
}

TEST_TIMEOUT(without_a_write_tracker_cycles_stop_the_world_and_the_trace_says_so_once, 60) {
    if (!hide_userfaultfd()) {
        fprintf(stderr, "SKIP without_a_write_tracker_cycles_stop_the_world_and_the_trace_says_so_once: "
                        "no seccomp filter (%s)\n", strerror(errno));
        return;
    }
    char why[160];
    REQUIRE(tracker_missing(why, sizeof why));
    REQUIRE(setenv("GCPIN_CONCURRENT", "1", 1) == 0);
    REQUIRE(setenv("GCPIN_TRACE", "1", 1) == 0);
    int memfd = memfd_create("trace", MFD_CLOEXEC);
    REQUIRE(memfd >= 0);
    int saved = stderr_to(memfd);
    build_heap();
    struct outcome o;
    run_rounds(K_READ | K_READV | K_BYTES, &o);
    verify_all();
    char *text = stderr_back(saved, memfd);
    CHECK_GE(o.cycles, MIN_CYCLES);
    CHECK_EQ(check_stats().mark_concurrent_ns, 0);
    CHECKF(lines_with(text, "gcpin: GCPIN_CONCURRENT=1: the kernel cannot track writes to the heap") == 1,
           "the trace should say once that collections stop the world: \"%.600s\"", text);
    CHECK_EQ(lines_with(text, "collections stop the world"), 1);
    CHECK_EQ(lines_with(text, ", concurrent"), 0);
    CHECK_GE(lines_with(text, "gcpin: gc "), MIN_CYCLES);
    free(text);
    pinner_unpin(&pins);
}
