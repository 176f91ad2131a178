/* uring_echo: a TCP echo server on io_uring whose receive buffers are
 * garbage-collected objects, and a load client that checks every echoed byte.
 *
 *     uring_echo [--conns N] [--msgs N] [--max-size BYTES] [--seconds S] [--no-uring]
 *
 * The server listens on 127.0.0.1 (an ephemeral port) and runs on the main
 * thread. Each message is received into a fresh gc_alloc_noscan buffer, pinned
 * with the connection's gc_pinner before the receive is submitted, sent back
 * from the same buffer, and unpinned when the send completes (it is garbage from
 * then on). The program keeps no visible pointer to a buffer while the kernel has
 * it: the submission carries the address, the connection record (in malloc
 * memory, which the collector does not scan) holds it XOR-hidden, so only the pin
 * keeps the buffer alive and in place. Meanwhile the server allocates garbage on
 * every completion, so collections run all the time.
 *
 * The client (4 threads, plain malloc memory, no gcpin calls) opens the
 * connections, sends messages of random size and content on all of them, reads
 * every echo back and compares it. It stops after --msgs messages per connection
 * or --seconds, whichever comes first; then the figures are printed. The exit
 * status is 0 only if every byte sent came back unchanged.
 *
 * Where io_uring is not available (io_uring_queue_init fails on an old kernel,
 * under seccomp, ENOSYS/EPERM; or an operation is missing), the server says so
 * and serves the same way with poll() and recv/send on the same pinned buffers.
 * --no-uring selects that path directly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gcpin.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    BUF_SIZE = 8192,        /* one receive buffer (a GC object) */
    MAX_CONNS = 1024,
    CLIENT_THREADS = 4,
    GARBAGE_OBJECTS = 8,    /* small objects of garbage per completion */
};

/* Hides a buffer address from the conservative scan (and from readers). */
#define HIDE_KEY ((uintptr_t)0x5A5A5A5A5A5A5A5Aull)
#define HIDE(p) ((uintptr_t)(p) ^ HIDE_KEY)
#define UNHIDE(x) ((unsigned char *)((uintptr_t)(x) ^ HIDE_KEY))

static struct {
    int conns, msgs, max_size;
    double seconds;
    bool no_uring;
} opt = {64, 200, 16384, 20.0, false};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fatal(const char *what, int err) {
    fprintf(stderr, "uring_echo: %s: %s\n", what, strerror(err));
    exit(1);
}

/* ------------------------------------------------------------------ server */

enum conn_state { RECEIVING, SENDING };

/* A connection. Lives in malloc memory: the collector never looks here. */
struct conn {
    int fd;
    int slot;            /* index into pinners[] */
    uintptr_t buf;       /* HIDE()den address of the pinned GC buffer */
    size_t len, sent;    /* bytes received into buf, bytes sent back so far */
    enum conn_state state;
};

/* One pinner per connection, in a global array: where the collector looks. */
static gc_pinner pinners[MAX_CONNS];
static int free_slots[MAX_CONNS], nfree_slots;

static struct {
    uint64_t echoed_bytes, messages, pins, pin_check_failures, errors;
    int open_conns, accepted;
    uint64_t peak_pinned;
} srv;

static atomic_int clients_finished;
static int listen_fd, port;

/* Garbage: the collector has work while buffers are with the kernel. One
 * buffer-sized block too, so a buffer freed too early would soon be reused
 * and overwritten (and the client would see it). */
static void churn(void) {
    for (int i = 0; i < GARBAGE_OBJECTS; i++) {
        void **p = gc_alloc(64 + 32 * (size_t)i);
        if (!p) fatal("gc_alloc", ENOMEM);
        p[0] = p;
    }
    unsigned char *b = gc_alloc_noscan(BUF_SIZE);
    if (!b) fatal("gc_alloc_noscan", ENOMEM);
    memset(b, 0xEE, BUF_SIZE);
}

/* A fresh buffer, pinned through the connection's pinner; only its hidden
 * address is kept. */
static unsigned char *new_pinned_buffer(struct conn *c) {
    unsigned char *b = gc_alloc_noscan(BUF_SIZE);
    if (!b) fatal("gc_alloc_noscan", ENOMEM);
    gc_status s = pinner_pin(&pinners[c->slot], b);
    if (s != GC_OK) {
        fprintf(stderr, "uring_echo: pinner_pin: %s\n", gc_strerror(s));
        exit(1);
    }
    srv.pins++;
    c->buf = HIDE(b);
    return b;
}

/* What the kernel is about to get must be pinned and pass the check. */
static unsigned char *checked_buffer(struct conn *c) {
    unsigned char *b = UNHIDE(c->buf);
    if (!is_pinned(b) || gc_pin_count(b) != 1 || gc_check_pointer(b) != GC_OK) srv.pin_check_failures++;
    return b;
}

static struct conn *new_conn(int fd) {
    if (nfree_slots == 0) {
        close(fd);
        srv.errors++;
        return NULL;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) fatal("calloc", ENOMEM);
    c->fd = fd;
    c->slot = free_slots[--nfree_slots];
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    srv.open_conns++;
    srv.accepted++;
    return c;
}

static void close_conn(struct conn *c) {
    close(c->fd);
    pinner_unpin(&pinners[c->slot]); /* the last buffer becomes garbage */
    free_slots[nfree_slots++] = c->slot;
    srv.open_conns--;
    free(c);
}

/* A whole message went back: its buffer is garbage from now on. */
static void echo_done(struct conn *c) {
    srv.echoed_bytes += c->len;
    srv.messages++;
    pinner_unpin(&pinners[c->slot]);
    c->buf = 0;
}

static bool server_done(void) {
    return atomic_load(&clients_finished) == CLIENT_THREADS && srv.open_conns == 0;
}

static void sample_pins(double *next) {
    if (now() < *next) return;
    *next = now() + 0.05;
    gc_stats st;
    gc_get_stats(&st);
    if (st.pinned_objects > srv.peak_pinned) srv.peak_pinned = st.pinned_objects;
}

/* ------------------------------------------------------- io_uring server */

#define TAG_ACCEPT 1ull /* connection records are 16-byte aligned, never 1 */

static struct io_uring ring;

/* Whether io_uring can run this server; says why not in `why`. */
static bool uring_setup(char *why, size_t n) {
    unsigned entries = 64;
    while (entries < (unsigned)opt.conns * 2 + 16 && entries < 4096) entries *= 2;
    int r = io_uring_queue_init(entries, &ring, 0);
    if (r < 0) {
        snprintf(why, n, "io_uring_queue_init: %s", strerror(-r));
        return false;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    if (!probe) {
        snprintf(why, n, "the kernel cannot list its io_uring operations (too old)");
        io_uring_queue_exit(&ring);
        return false;
    }
    static const struct { int op; const char *name; } need[] = {
        {IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_RECV, "RECV"}, {IORING_OP_SEND, "SEND"}};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!io_uring_opcode_supported(probe, need[i].op)) {
            snprintf(why, n, "the kernel's io_uring lacks IORING_OP_%s", need[i].name);
            io_uring_free_probe(probe);
            io_uring_queue_exit(&ring);
            return false;
        }
    }
    io_uring_free_probe(probe);
    return true;
}

static struct io_uring_sqe *get_sqe(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (!sqe) {
        int r = io_uring_submit(&ring);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) fatal("io_uring_submit", -r);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void uring_accept(void) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_accept(sqe, listen_fd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, TAG_ACCEPT);
}

static void uring_recv(struct conn *c) {
    unsigned char *b = new_pinned_buffer(c);
    checked_buffer(c);
    c->state = RECEIVING;
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv(sqe, c->fd, b, BUF_SIZE, 0);
    io_uring_sqe_set_data(sqe, c);
}

static void uring_send(struct conn *c) {
    unsigned char *b = checked_buffer(c);
    c->state = SENDING;
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, c->fd, b + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, c);
}

static void uring_complete(struct io_uring_cqe *cqe) {
    int res = cqe->res;
    if (io_uring_cqe_get_data64(cqe) == TAG_ACCEPT) {
        if (res >= 0) {
            struct conn *c = new_conn(res);
            if (c) uring_recv(c);
        } else if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN) {
            fprintf(stderr, "uring_echo: accept: %s\n", strerror(-res));
            srv.errors++;
        }
        if (atomic_load(&clients_finished) < CLIENT_THREADS) uring_accept();
        return;
    }
    struct conn *c = io_uring_cqe_get_data(cqe);
    if (res < 0 && res != -ECONNRESET && res != -EPIPE) {
        fprintf(stderr, "uring_echo: %s: %s\n", c->state == RECEIVING ? "recv" : "send", strerror(-res));
        srv.errors++;
    }
    if (res <= 0) { /* end of stream, or an error */
        close_conn(c);
        return;
    }
    if (c->state == RECEIVING) {
        c->len = (size_t)res;
        c->sent = 0;
        uring_send(c);
    } else {
        c->sent += (size_t)res;
        if (c->sent < c->len) {
            uring_send(c); /* the rest of a partial send */
        } else {
            echo_done(c);
            uring_recv(c);
        }
    }
}

static bool serve_uring(double hard_deadline) {
    uring_accept();
    double next_sample = 0;
    while (!server_done()) {
        if (now() > hard_deadline) return false;
        int r = io_uring_submit(&ring);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) fatal("io_uring_submit", -r);
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 50 * 1000 * 1000};
        r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
        if (r == -ETIME || r == -EINTR || r == -EAGAIN) continue; /* EINTR: a collection stopped us */
        if (r < 0) fatal("io_uring_wait_cqe_timeout", -r);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            uring_complete(cqe);
            churn();
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        sample_pins(&next_sample);
    }
    io_uring_queue_exit(&ring); /* cancels the last accept; no buffer is in flight */
    return true;
}

/* --------------------------------------------------- poll() fallback server */

static struct conn *poll_conns[MAX_CONNS];
static int npoll_conns;

static bool serve_poll(double hard_deadline) {
    static struct pollfd pfds[MAX_CONNS + 1];
    double next_sample = 0;
    while (!server_done()) {
        if (now() > hard_deadline) return false;
        pfds[0] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (int i = 0; i < npoll_conns; i++)
            pfds[i + 1] = (struct pollfd){.fd = poll_conns[i]->fd,
                                          .events = poll_conns[i]->state == RECEIVING ? POLLIN : POLLOUT};
        int r = poll(pfds, (nfds_t)npoll_conns + 1, 50);
        if (r < 0 && errno == EINTR) continue; /* a collection stopped us */
        if (r < 0) fatal("poll", errno);
        if (pfds[0].revents & POLLIN) {
            int fd;
            while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                struct conn *c = new_conn(fd);
                if (!c) continue;
                new_pinned_buffer(c);
                c->state = RECEIVING;
                poll_conns[npoll_conns++] = c;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                fprintf(stderr, "uring_echo: accept: %s\n", strerror(errno));
                srv.errors++;
            }
        }
        int kept = 0, polled = npoll_conns;
        for (int i = 0; i < polled; i++) {
            struct conn *c = poll_conns[i];
            bool closed = false;
            if (pfds[i + 1].revents) {
                unsigned char *b = checked_buffer(c);
                ssize_t n = c->state == RECEIVING ? recv(c->fd, b, BUF_SIZE, 0)
                                                  : send(c->fd, b + c->sent, c->len - c->sent, MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                    /* try again later */
                } else if (n <= 0) {
                    if (n < 0 && errno != ECONNRESET && errno != EPIPE) {
                        fprintf(stderr, "uring_echo: recv/send: %s\n", strerror(errno));
                        srv.errors++;
                    }
                    close_conn(c);
                    closed = true;
                } else if (c->state == RECEIVING) {
                    c->len = (size_t)n;
                    c->sent = 0;
                    c->state = SENDING;
                } else if ((c->sent += (size_t)n) == c->len) {
                    echo_done(c);
                    new_pinned_buffer(c);
                    c->state = RECEIVING;
                }
                churn();
            }
            if (!closed) poll_conns[kept++] = c;
        }
        /* connections accepted above sit after the polled ones */
        for (int i = polled; i < npoll_conns; i++) poll_conns[kept++] = poll_conns[i];
        npoll_conns = kept;
        sample_pins(&next_sample);
    }
    return true;
}

/* ------------------------------------------------------------------ client */

static struct {
    atomic_ullong sent_bytes, verified_bytes, messages, mismatches, errors;
    atomic_int conns_done;
} cli;
static double client_deadline;

struct cconn {
    int fd;
    uint64_t rng;
    size_t size;
    unsigned char *out, *in;
};

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool send_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool recv_all(int fd, unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void *client_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    int first = opt.conns * id / CLIENT_THREADS, last = opt.conns * (id + 1) / CLIENT_THREADS;
    int n = last - first;
    struct cconn *cs = calloc((size_t)(n > 0 ? n : 1), sizeof *cs);
    if (!cs) fatal("calloc", ENOMEM);
    bool failed = false;
    for (int i = 0; i < n; i++) {
        struct cconn *c = &cs[i];
        c->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(first + i + 1);
        c->out = malloc((size_t)opt.max_size);
        c->in = malloc((size_t)opt.max_size);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (!c->out || !c->in || c->fd < 0) fatal("client setup", errno ? errno : ENOMEM);
        struct timeval tv = {10, 0}; /* a lost echo fails, it does not hang */
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "uring_echo: client connect: %s\n", strerror(errno));
            atomic_fetch_add(&cli.errors, 1);
            failed = true;
        }
    }
    /* Each round: a message on every connection, then every echo back. */
    for (int m = 0; !failed && m < opt.msgs && now() < client_deadline; m++) {
        for (int i = 0; i < n && !failed; i++) {
            struct cconn *c = &cs[i];
            c->size = 1 + (size_t)(next_rand(&c->rng) % (uint64_t)opt.max_size);
            for (size_t k = 0; k < c->size; k += 8) {
                uint64_t v = next_rand(&c->rng);
                memcpy(c->out + k, &v, c->size - k < 8 ? c->size - k : 8);
            }
            if (!send_all(c->fd, c->out, c->size)) {
                fprintf(stderr, "uring_echo: client send: %s\n", strerror(errno));
                atomic_fetch_add(&cli.errors, 1);
                failed = true;
            } else {
                atomic_fetch_add(&cli.sent_bytes, c->size);
            }
        }
        for (int i = 0; i < n && !failed; i++) {
            struct cconn *c = &cs[i];
            if (!recv_all(c->fd, c->in, c->size)) {
                fprintf(stderr, "uring_echo: client recv: %s\n", errno ? strerror(errno) : "connection closed");
                atomic_fetch_add(&cli.errors, 1);
                failed = true;
            } else if (memcmp(c->in, c->out, c->size) != 0) {
                atomic_fetch_add(&cli.mismatches, 1);
            } else {
                atomic_fetch_add(&cli.verified_bytes, c->size);
                atomic_fetch_add(&cli.messages, 1);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].fd >= 0) close(cs[i].fd);
        free(cs[i].out);
        free(cs[i].in);
    }
    free(cs);
    atomic_fetch_add(&clients_finished, 1);
    return NULL;
}

/* -------------------------------------------------------------------- main */

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--conns N] [--msgs N] [--max-size BYTES] [--seconds S] [--no-uring]\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-uring") == 0) opt.no_uring = true;
        else if (i + 1 < argc && strcmp(a, "--conns") == 0) opt.conns = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(a, "--msgs") == 0) opt.msgs = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(a, "--max-size") == 0) opt.max_size = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(a, "--seconds") == 0) opt.seconds = atof(argv[++i]);
        else usage(argv[0]);
    }
    if (opt.conns < CLIENT_THREADS || opt.conns > MAX_CONNS - 1 || opt.msgs < 1 || opt.max_size < 1 ||
        opt.max_size > (1 << 20) || opt.seconds <= 0)
        usage(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CONNS; i++) free_slots[nfree_slots++] = MAX_CONNS - 1 - i;

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) fatal("socket", errno);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0) fatal("bind 127.0.0.1", errno);
    if (listen(listen_fd, MAX_CONNS) != 0) fatal("listen", errno);
    if (getsockname(listen_fd, (struct sockaddr *)&sa, &sl) != 0) fatal("getsockname", errno);
    port = ntohs(sa.sin_port);

    char why[200] = "";
    bool uring = !opt.no_uring && uring_setup(why, sizeof why);
    if (!uring) {
        if (opt.no_uring)
            printf("uring_echo: --no-uring: serving with poll() + recv/send on pinned GC buffers\n");
        else
            printf("uring_echo: io_uring unavailable (%s); falling back to poll() + recv/send "
                   "on the same pinned GC buffers\n", why);
        int fl = fcntl(listen_fd, F_GETFL);
        if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) != 0) fatal("fcntl", errno);
    }
    printf("uring_echo: %s server on 127.0.0.1:%d; client: %d connections x %d messages of 1..%d bytes, "
           "%d threads, at most %.0f s\n",
           uring ? "io_uring" : "poll()", port, opt.conns, opt.msgs, opt.max_size, CLIENT_THREADS, opt.seconds);
    fflush(stdout);

    gc_stats before, after;
    gc_collect();
    gc_get_stats(&before);
    double t0 = now();
    client_deadline = t0 + opt.seconds;
    pthread_t clients[CLIENT_THREADS];
    for (int i = 0; i < CLIENT_THREADS; i++) {
        int rc = pthread_create(&clients[i], NULL, client_thread, (void *)(intptr_t)i);
        if (rc != 0) fatal("pthread_create", rc);
    }
    bool finished = uring ? serve_uring(t0 + opt.seconds + 15) : serve_poll(t0 + opt.seconds + 15);
    double secs = now() - t0;
    if (!finished) {
        fprintf(stderr, "uring_echo: the server did not finish in time (%d connections still open)\n",
                srv.open_conns);
        return 1; /* client threads may still be blocked: do not join them */
    }
    for (int i = 0; i < CLIENT_THREADS; i++) pthread_join(clients[i], NULL);
    close(listen_fd);
    gc_get_stats(&after);

    unsigned long long sent = atomic_load(&cli.sent_bytes), verified = atomic_load(&cli.verified_bytes);
    unsigned long long msgs = atomic_load(&cli.messages), bad = atomic_load(&cli.mismatches);
    unsigned long long errs = atomic_load(&cli.errors) + srv.errors;
    double mib = (double)verified / (1 << 20);
    printf("uring_echo: %llu messages, %.1f MiB echoed and verified in %.2f s: %.1f MiB/s each way, %.0f messages/s\n",
           msgs, mib, secs, mib / secs, (double)msgs / secs);
    printf("uring_echo: %llu collections during the run (pause max %.3f ms, total %.1f ms); "
           "%llu pins; pinned objects peak %llu, now %llu\n",
           (unsigned long long)(after.num_gc - before.num_gc), (double)after.max_pause_ns / 1e6,
           (double)(after.pause_total_ns - before.pause_total_ns) / 1e6, (unsigned long long)srv.pins,
           (unsigned long long)srv.peak_pinned, (unsigned long long)after.pinned_objects);
    bool ok = bad == 0 && errs == 0 && verified == sent && sent > 0 && srv.echoed_bytes == sent &&
              srv.accepted == opt.conns && srv.pin_check_failures == 0 && after.pinned_objects == 0 &&
              msgs >= (unsigned long long)opt.conns;
    if (ok) {
        printf("uring_echo: OK: every byte came back\n");
        return 0;
    }
    printf("uring_echo: FAILED: %llu of %llu bytes verified, %llu corrupted messages, %llu errors, "
           "%llu bytes echoed by the server, %d of %d connections accepted, %llu pin check failures, "
           "%llu objects still pinned\n",
           verified, sent, bad, errs, (unsigned long long)srv.echoed_bytes, srv.accepted, opt.conns,
           (unsigned long long)srv.pin_check_failures, (unsigned long long)after.pinned_objects);
    return 1;
}
