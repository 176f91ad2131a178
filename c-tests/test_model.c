/* A random-operation model test: a seeded stream of allocations, links, roots,
 * pins, finalizers, pointers hidden in malloc memory and collections, checked
 * against a model of what must be alive and pinned.
 *
 * The model, per thread (each thread has its own objects, roots and pinners):
 *   roots      a table in malloc memory registered with gc_add_roots;
 *   links      pointer slots in scanned objects (object -> object);
 *   pins       per gc_pinner, the list of what it pinned (several pinners per
 *              thread; an object may be pinned many times);
 *   touchable  the closure over links of (root slots ∪ pinned objects): what the
 *              test may use. Everything else is dead to the test, for good: it
 *              is never touched again (a conservative collector may keep it,
 *              and its finalizer may run at any moment).
 * Plus a few shared objects, rooted in a global and pinned from every thread:
 * their pin count is the sum of the threads' counts (exact at the barriers).
 *
 * What is checked:
 *   - every touchable object (after each collection, after each pin change, and
 *     at random): its content (a header with a per-allocation tag, a pattern, its
 *     link slots equal to the model), is_pinned and gc_pin_count equal to the
 *     model, its finalizer has not run; fresh memory is zeroed;
 *   - gc_check_pointer agrees with the model (an unpinned object reachable
 *     through pinned ones); pinner_pin_many is all or nothing; gc_verify_heap;
 *     gc_get_stats' pinned_objects (one thread);
 *   - finalizers (Go's rules): one runs only on an object the model has declared
 *     dead (the model declares deaths before the store that causes them), at
 *     most once, never after being cleared, never while an object with a pending
 *     finalizer points at its object; the finalized object and what it reaches
 *     are intact when it runs; at the end, with everything dropped, at least 90%
 *     of the finalizers that must run (those not reachable from a finalizer
 *     cycle, which Go never runs) did run, each after every finalizer of an
 *     object that reaches it.
 * Pointers to non-rooted objects are kept hidden (HIDE) in the model and unhidden
 * only in NOINLINE helpers; the threads that ran the operations have exited
 * before the final bulk check, so their stacks hold no stale words.
 *
 * Environment:
 *   GCPIN_MODEL_SEED  the seed (default: from the clock); each thread's stream
 *                     derives from it and the thread's index
 *   GCPIN_MODEL_OPS   operations per test, split over its threads (default
 *                     MODEL_DEFAULT_OPS)
 * The seed and the op count are printed at the start of each test; a failure
 * prints "replay with GCPIN_MODEL_SEED=<seed> GCPIN_MODEL_OPS=<n>" (thread
 * interleaving aside, that replays the run). */
#include "check.h"

#include <pthread.h>

#define MODEL_DEFAULT_OPS 200000L

enum {
    MAXT = 8,       /* threads */
    NSHARED = 8,    /* shared objects */
    NROOTS = 160,   /* root slots per thread */
    NMT = 48,       /* malloc (unregistered) slots per thread */
    NPIN = 4,       /* pinners per thread */
    PCAP = 40,      /* pins per pinner (past 5 they spill out of the inline store) */
    MAXSLOTS = 4,   /* link slots per scanned object */
    MAXLIVE = 400,  /* touchable objects per thread */
    ROUND = 500,    /* operations per thread between two barriers */
};

enum { ST_FREE = 0, ST_LIVE = 1, ST_DEAD = 2 };

/* Link codes: 0 = NULL, 1.. = own serial + 1, CODE_SHARED | s = shared object s. */
#define CODE_SHARED 0x80000000u
#define SHARED_OWNER 0xFFFFu

struct rec {
    uintptr_t hidden; /* HIDE(object base) */
    uint64_t tag;     /* owner << 32 | serial: unique per allocation */
    uint32_t size;
    uint8_t noscan, nslots, has_fin, ever_pinned;
    uint32_t born_op, died_op; /* for the diagnostics */
    uint32_t link[MAXSLOTS];
    uint32_t pins;  /* model pin count (own objects) */
    uint32_t stamp; /* closure marking */
    int32_t live_pos;
    atomic_uchar state;
    atomic_int fin_runs;
    atomic_int pend_parents; /* dead objects with a pending finalizer that point here */
    atomic_uint fin_seq;     /* order in which the finalizers ran (1..) */
};

/* Where the collector looks: the roots and the pinners (registered). */
struct rootreg {
    void *root[NROOTS];
    gc_pinner pinner[NPIN];
};

struct pmodel {
    int n;
    uint32_t code[PCAP];
};

enum op_kind {
    OP_ALLOC, OP_LINK, OP_UNLINK, OP_ROOT_SET, OP_ROOT_CLEAR, OP_PIN, OP_PIN_MANY, OP_UNPIN, OP_FIN,
    OP_HIDE, OP_MTAB_USE, OP_CHECK_ONE, OP_CHECK_PTR, OP_COLLECT, OP_COUNT
};
static const char *const op_names[OP_COUNT] = {
    "alloc", "link", "unlink", "root_set", "root_clear", "pin", "pin_many", "unpin", "finalizer",
    "hide_in_malloc", "use_malloc_ptr", "check_one", "check_pointer", "collect",
};
/* Relative weights: an operation is drawn with probability weight / sum. */
static const int op_weight[OP_COUNT] = {
    230, 130, 50, 60, 50, 85, 20, 60, 55, 40, 40, 60, 30, 5,
};

struct thr {
    int idx;
    uint64_t seed, rng;
    long ops;
    atomic_long op_i; /* read by finalizers, for their messages */
    const char *op_name;
    struct rec *rec;
    uint32_t nrec, maxrec;
    uint32_t live[MAXLIVE];
    int nlive;
    uint32_t root_code[NROOTS];
    void **mtab; /* malloc, not a root: raw pointers */
    uint32_t mtab_code[NMT];
    struct pmodel pm[NPIN];
    struct rootreg *rr;
    int shared_pins[NSHARED];
    uint32_t stamp;
    uint32_t stack[MAXLIVE + 8];
    long count[OP_COUNT];
    long deaths, fins_set, collects, cp_ok, cp_unpinned;
    long live_sum, pinned_sum; /* at explicit collections: for the summary */
    int live_max;
};

static struct {
    int nthreads, weight_total;
    uint64_t seed;
    long ops;
    struct thr *thr[MAXT];
    struct rec shared_rec[NSHARED];
    atomic_uint fin_seq;
    atomic_int stop;
    atomic_int bad_fin_arg;
    pthread_barrier_t bar;
} M;

static void *shared_root[NSHARED]; /* bss: a root */

static char replay_msg[256];

/* ------------------------------------------------------------------ helpers */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint32_t rnd(struct thr *th, uint32_t n) {
    th->rng += 0x9E3779B97F4A7C15ull;
    uint64_t z = th->rng;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return n ? (uint32_t)((z >> 32) * n >> 32) : 0;
}

/* Scanned objects hold words with bit 63 set (never a pointer) besides their
 * slots; noscan objects hold check.h's byte pattern. */
static uint64_t pat_word(uint64_t tag, size_t i) { return mix64(tag * 0x100000001B3ull + i) | (1ull << 63); }
#define HDR0(tag) ((0xC0DEull << 48) | (uint64_t)(tag))
#define HDR1(size) ((0xB1A5ull << 48) | (uint64_t)(size))

static size_t hdr_words(const struct rec *r) { return r->size >= 16 ? 2 : 0; }

static void fill_content(void *p, const struct rec *r) {
    uint64_t *w = p;
    size_t s = r->size, h = hdr_words(r);
    if (h) {
        w[0] = HDR0(r->tag);
        w[1] = HDR1(s);
    }
    if (r->noscan) {
        pattern_fill((char *)p + h * 8, s - h * 8, (uintptr_t)r->tag);
        return;
    }
    for (size_t i = h + r->nslots; i < s / 8; i++) w[i] = pat_word(r->tag, i);
}

/* NULL when the content (not the slots) is intact, else what is wrong. */
static const char *content_bad(const void *p, const struct rec *r) {
    const uint64_t *w = p;
    size_t s = r->size, h = hdr_words(r);
    if (h) {
        if (w[0] != HDR0(r->tag)) return "header tag overwritten (freed and reused?)";
        if (w[1] != HDR1(s)) return "header size word overwritten";
    }
    if (r->noscan) return pattern_ok((const char *)p + h * 8, s - h * 8, (uintptr_t)r->tag) ? NULL : "pattern damaged";
    for (size_t i = h + r->nslots; i < s / 8; i++)
        if (w[i] != pat_word(r->tag, i)) return "pattern damaged";
    if (!all_zero((const char *)p + s / 8 * 8, s % 8)) return "tail bytes not zero";
    return NULL;
}

static struct rec *rec_of(struct thr *th, uint32_t code) {
    if (code & CODE_SHARED) return &M.shared_rec[code & ~CODE_SHARED];
    return &th->rec[code - 1];
}

static void code_name(uint32_t owner_idx, uint32_t code, char *buf, size_t n) {
    if (code & CODE_SHARED)
        snprintf(buf, n, "shared#%u", code & ~CODE_SHARED);
    else
        snprintf(buf, n, "t%u#%u", owner_idx, code - 1);
}

NOINLINE static void *ptr_of(const struct rec *r) { return UNHIDE(r->hidden); }

NOINLINE static void *link_ptr(struct thr *th, uint32_t code) {
    if (!code) return NULL;
    return ptr_of(rec_of(th, code));
}

static void stop_all(void) { atomic_store(&M.stop, 1); }

static bool stopping(void) { return atomic_load(&M.stop) || check_failures() > 0; }

__attribute__((format(printf, 3, 4)))
static void mfail(struct thr *th, int line, const char *fmt, ...) {
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (th)
        check_fail(__FILE__, line, "[thread %d, op %ld %s] %s", th->idx, atomic_load_explicit(&th->op_i, memory_order_relaxed),
                   th->op_name, msg);
    else
        check_fail(__FILE__, line, "%s", msg);
    stop_all();
}
#define MFAIL(th, ...) mfail((th), __LINE__, __VA_ARGS__)
#define MCHECK(th, cond, ...)                                                    \
    do {                                                                         \
        if (!(cond)) MFAIL(th, __VA_ARGS__);                                     \
    } while (0)

/* Total pins on shared object s in the model: exact only when no other thread
 * is running operations (one thread, or at a barrier). */
static int shared_pins_total(int s) {
    int n = 0;
    for (int t = 0; t < M.nthreads; t++) n += M.thr[t]->shared_pins[s];
    return n;
}

/* ------------------------------------------------------------- finalizers */

static void *fin_arg(uint32_t owner, uint32_t serial) {
    return (void *)HIDE(((uint64_t)owner << 32) | serial); /* not a pointer: never a root */
}

static struct rec *rec_of_owner(uint32_t owner, uint32_t code) {
    if (code & CODE_SHARED) return &M.shared_rec[code & ~CODE_SHARED];
    return &M.thr[owner - 1]->rec[code - 1];
}

/* Runs on the finalizer thread or in gc_run_finalizers on any thread: reads
 * only what is frozen (dead objects' links) or immutable (headers, patterns)
 * or atomic. */
NOINLINE static void finalizer_body(void *obj, void *arg) {
    uint64_t code = (uint64_t)HIDE(arg);
    uint32_t owner = (uint32_t)(code >> 32), serial = (uint32_t)code;
    struct rec *r;
    if (owner == SHARED_OWNER && serial < NSHARED) {
        r = &M.shared_rec[serial];
    } else if (owner >= 1 && owner <= (uint32_t)M.nthreads && serial < M.thr[owner - 1]->maxrec) {
        r = &M.thr[owner - 1]->rec[serial];
    } else {
        atomic_fetch_add(&M.bad_fin_arg, 1);
        MFAIL(NULL, "finalizer called with an argument never given: %#jx", (uintmax_t)code);
        return;
    }
    char name[80];
    code_name(owner - 1, owner == SHARED_OWNER ? (CODE_SHARED | serial) : serial + 1, name, sizeof name);
    if (owner != SHARED_OWNER) /* where its thread is now, for the reader */
        snprintf(name + strlen(name), sizeof name - strlen(name), " (thread %u now at op %ld)", owner - 1,
                 atomic_load_explicit(&M.thr[owner - 1]->op_i, memory_order_relaxed));
    unsigned seq = atomic_fetch_add(&M.fin_seq, 1) + 1;
    int runs = atomic_fetch_add(&r->fin_runs, 1);
    if (runs != 0) {
        MFAIL(NULL, "finalizer of %s ran %d times", name, runs + 1);
        return;
    }
    atomic_store(&r->fin_seq, seq);
    int state = atomic_load_explicit(&r->state, memory_order_acquire);
    if (state != ST_DEAD) {
        MFAIL(NULL, "finalizer of %s ran while the model says it is reachable or pinned", name);
        return;
    }
    if (!r->has_fin) MFAIL(NULL, "finalizer of %s ran after it was cleared", name);
    if (atomic_load(&r->pend_parents) != 0)
        MFAIL(NULL, "finalizer of %s ran while %d dead object(s) with pending finalizers point at it (Go: "
              "only theirs may run)", name, atomic_load(&r->pend_parents));
    if (HIDE(obj) != r->hidden) MFAIL(NULL, "finalizer of %s got %p, not the object's base", name, obj);
    const char *why = content_bad(obj, r);
    if (why) MFAIL(NULL, "object %s in its finalizer: %s", name, why);

    /* What it reaches must be intact: walk the frozen links (dead objects), up
     * to 64 objects; live objects' slots change under us, so stop at them. */
    enum { VMAX = 64 };
    const struct rec *seen[VMAX];
    const void *objs[VMAX];
    int nseen = 0, head = 0;
    seen[nseen] = r;
    objs[nseen++] = obj;
    while (head < nseen) {
        const struct rec *x = seen[head];
        const void *xp = objs[head++];
        for (int i = 0; i < x->nslots; i++) {
            uint32_t c = x->link[i];
            void *q = ((void *const *)xp)[2 + i];
            if (!c) {
                if (q) MFAIL(NULL, "finalizing %s: a dead object's slot changed", name);
                continue;
            }
            struct rec *y = rec_of_owner(owner, c);
            if (HIDE(q) != y->hidden) {
                MFAIL(NULL, "finalizing %s: a dead object's slot does not hold its link", name);
                continue;
            }
            bool dup = false;
            for (int k = 0; k < nseen; k++) dup |= seen[k] == y;
            if (dup) continue;
            const char *ywhy = content_bad(q, y);
            if (ywhy) {
                char yname[32];
                code_name(owner - 1, c, yname, sizeof yname);
                MFAIL(NULL, "finalizing %s: object %s it reaches: %s", name, yname, ywhy);
            }
            if (nseen < VMAX && atomic_load_explicit(&y->state, memory_order_acquire) == ST_DEAD) {
                seen[nseen] = y;
                objs[nseen++] = q;
            }
        }
    }
    /* It no longer holds its targets' finalizers back. */
    if (r->has_fin)
        for (int i = 0; i < r->nslots; i++) {
            uint32_t c = r->link[i];
            if (c && rec_of_owner(owner, c) != r) atomic_fetch_sub(&rec_of_owner(owner, c)->pend_parents, 1);
        }
}

/* Zeroes the stack below the caller, where finalizer_body left copies of the
 * pointers it followed: on the finalizer thread they would keep those objects
 * (and their finalizers) for ever. */
NOINLINE static void scrub_small(void) {
    char buf[8192];
    memset(buf, 0, sizeof buf);
    escape(buf);
}

static void model_finalizer(void *obj, void *arg) {
    finalizer_body(obj, arg);
    scrub_small();
}

/* --------------------------------------------------------------- the model */

static void live_add(struct thr *th, uint32_t serial) {
    th->rec[serial].live_pos = th->nlive;
    th->live[th->nlive++] = serial;
}

static void live_remove(struct thr *th, uint32_t serial) {
    int pos = th->rec[serial].live_pos;
    uint32_t last = th->live[--th->nlive];
    th->live[pos] = last;
    th->rec[last].live_pos = pos;
    th->rec[serial].live_pos = -1;
}

/* The object becomes unreachable: declared dead before the store that does it. */
static void die(struct thr *th, uint32_t serial) {
    struct rec *r = &th->rec[serial];
    if (atomic_load(&r->fin_runs) != 0) MFAIL(th, "finalizer of t%d#%u ran while it was reachable or pinned", th->idx, serial);
    if (r->pins) MFAIL(th, "model: pinned object dies");
    if (r->has_fin)
        for (int i = 0; i < r->nslots; i++) {
            uint32_t c = r->link[i];
            if (c && c != serial + 1) atomic_fetch_add(&rec_of(th, c)->pend_parents, 1);
        }
    r->died_op = (uint32_t)atomic_load_explicit(&th->op_i, memory_order_relaxed);
    atomic_store_explicit(&r->state, ST_DEAD, memory_order_release);
    live_remove(th, serial);
    th->deaths++;
}

static void mark_push(struct thr *th, uint32_t code, int *sp) {
    if (!code || (code & CODE_SHARED)) return;
    struct rec *r = &th->rec[code - 1];
    if (r->stamp == th->stamp) return;
    r->stamp = th->stamp;
    th->stack[(*sp)++] = code - 1;
}

/* Recomputes what is touchable; declares the rest dead. Called after a model
 * change that may drop a reference, before the real store. */
static void recompute(struct thr *th) {
    th->stamp++;
    int sp = 0;
    for (int j = 0; j < NROOTS; j++) mark_push(th, th->root_code[j], &sp);
    for (int k = 0; k < th->nlive; k++)
        if (th->rec[th->live[k]].pins) mark_push(th, th->live[k] + 1, &sp);
    while (sp) {
        struct rec *r = &th->rec[th->stack[--sp]];
        for (int i = 0; i < r->nslots; i++) mark_push(th, r->link[i], &sp);
    }
    for (int k = 0; k < th->nlive;) {
        uint32_t s = th->live[k];
        if (th->rec[s].stamp != th->stamp)
            die(th, s); /* swaps the last one into k */
        else
            k++;
    }
}

static bool is_live(struct thr *th, uint32_t code) {
    if (!code) return false;
    if (code & CODE_SHARED) return true;
    return atomic_load_explicit(&th->rec[code - 1].state, memory_order_relaxed) == ST_LIVE;
}

static uint32_t pick_live(struct thr *th) {
    return th->nlive ? th->live[rnd(th, (uint32_t)th->nlive)] + 1 : 0;
}

static uint32_t pick_live_scan(struct thr *th) {
    for (int tries = 0; tries < 8 && th->nlive; tries++) {
        uint32_t c = pick_live(th);
        if (th->rec[c - 1].nslots) return c;
    }
    return 0;
}

/* Verifies one touchable object against the model. */
NOINLINE static void verify_obj(struct thr *th, uint32_t code) {
    struct rec *r = rec_of(th, code);
    char name[32];
    code_name((uint32_t)th->idx, code, name, sizeof name);
    const void *p = ptr_of(r);
    const char *why = content_bad(p, r);
    MCHECK(th, !why, "live object %s (%u bytes%s): %s", name, r->size, r->noscan ? ", noscan" : "", why);
    for (int i = 0; i < r->nslots; i++) {
        void *want = link_ptr(th, r->link[i]);
        MCHECK(th, ((void *const *)p)[2 + i] == want, "live object %s: slot %d holds %p, the model %p", name, i,
               ((void *const *)p)[2 + i], want);
    }
    MCHECK(th, atomic_load(&r->fin_runs) == 0, "finalizer of live object %s has run", name);
    if (code & CODE_SHARED) {
        int s = (int)(code & ~CODE_SHARED), mine = th->shared_pins[s];
        size_t n = gc_pin_count(p);
        if (M.nthreads == 1) {
            MCHECK(th, n == (size_t)mine && is_pinned(p) == (mine > 0), "%s: pin count %zu, is_pinned %d, model %d",
                   name, n, is_pinned(p), mine);
        } else if (mine > 0) {
            MCHECK(th, n >= (size_t)mine && is_pinned(p), "%s: pin count %zu, is_pinned %d, but this thread holds %d",
                   name, n, is_pinned(p), mine);
        }
    } else {
        size_t n = gc_pin_count(p);
        MCHECK(th, n == r->pins && is_pinned(p) == (r->pins > 0), "live object %s: pin count %zu, is_pinned %d, model %u",
               name, n, is_pinned(p), r->pins);
    }
}

static void check_all(struct thr *th) {
    for (int k = 0; k < th->nlive && !stopping(); k++) verify_obj(th, th->live[k] + 1);
    for (int s = 0; s < NSHARED && !stopping(); s++) verify_obj(th, CODE_SHARED | (uint32_t)s);
    if (M.nthreads == 1 && !stopping()) {
        uint64_t want = 0;
        for (int k = 0; k < th->nlive; k++) want += th->rec[th->live[k]].pins > 0;
        for (int s = 0; s < NSHARED; s++) want += th->shared_pins[s] > 0;
        gc_stats st;
        gc_get_stats(&st);
        MCHECK(th, st.pinned_objects == want, "gc_get_stats: %ju pinned objects, the model %ju",
               (uintmax_t)st.pinned_objects, (uintmax_t)want);
    }
}

/* The model's gc_check_pointer: 0 GC_OK, 1 GC_ERR_UNPINNED_POINTER, -1 unknown
 * (a shared object whose pins other threads change). */
static int model_check_pointer(struct thr *th, uint32_t start) {
    th->stamp++;
    int sp = 0;
    mark_push(th, start, &sp);
    bool unknown = false;
    while (sp) {
        struct rec *r = &th->rec[th->stack[--sp]];
        for (int i = 0; i < r->nslots; i++) {
            uint32_t c = r->link[i];
            if (!c) continue;
            if (c & CODE_SHARED) {
                int s = (int)(c & ~CODE_SHARED);
                if (th->shared_pins[s] == 0) {
                    if (M.nthreads == 1) return 1;
                    unknown = true; /* another thread may hold a pin */
                }
                continue; /* shared objects hold no pointers */
            }
            if (th->rec[c - 1].pins == 0) return 1;
            mark_push(th, c, &sp);
        }
    }
    return unknown ? -1 : 0;
}

/* --------------------------------------------------------------- operations */

static uint32_t pick_size(struct thr *th) {
    uint32_t r = rnd(th, 1000);
    if (r < 550) return 1 + rnd(th, 64);
    if (r < 900) return 65 + rnd(th, 4096 - 64);
    if (r < 990) return 4097 + rnd(th, 32768 - 4096);
    return 32769 + rnd(th, 64 * 1024); /* a large object: a span of its own */
}

static void set_fin(struct thr *th, uint32_t code) {
    struct rec *r = rec_of(th, code);
    char *p = ptr_of(r);
    gc_status s = gc_set_finalizer(p + rnd(th, r->size), model_finalizer, fin_arg((uint32_t)th->idx + 1, code - 1));
    MCHECK(th, s == GC_OK, "gc_set_finalizer: %s", check_status_name(s));
    r->has_fin = 1;
    th->fins_set++;
}

/* Pins through pinner k; returns false when that pinner is full. */
static bool pin_through(struct thr *th, int k, uint32_t code) {
    struct pmodel *pm = &th->pm[k];
    if (pm->n >= PCAP) return false;
    struct rec *r = rec_of(th, code);
    char *p = ptr_of(r);
    gc_status s = pinner_pin(&th->rr->pinner[k], p + rnd(th, r->size)); /* interior pointers too */
    MCHECK(th, s == GC_OK, "pinner_pin: %s", check_status_name(s));
    if (s != GC_OK) return false;
    pm->code[pm->n++] = code;
    if (code & CODE_SHARED)
        th->shared_pins[code & ~CODE_SHARED]++;
    else
        r->pins++, r->ever_pinned = 1;
    verify_obj(th, code);
    return true;
}

static int pick_pinner_with_room(struct thr *th, int room) {
    int k0 = (int)rnd(th, NPIN);
    for (int i = 0; i < NPIN; i++) {
        int k = (k0 + i) % NPIN;
        if (th->pm[k].n + room <= PCAP) return k;
    }
    return -1;
}

static void op_root_clear(struct thr *th);

NOINLINE static void op_alloc(struct thr *th) {
    if (th->nlive >= MAXLIVE || th->nrec >= th->maxrec) {
        op_root_clear(th);
        return;
    }
    uint32_t size = pick_size(th);
    bool noscan = rnd(th, 100) < 30;
    char *p = noscan ? gc_alloc_noscan(size) : gc_alloc(size);
    if (!p) {
        MFAIL(th, "gc_alloc%s(%u) returned NULL", noscan ? "_noscan" : "", size);
        return;
    }
    uint32_t serial = th->nrec++, code = serial + 1;
    struct rec *r = &th->rec[serial];
    r->hidden = HIDE(p);
    r->tag = ((uint64_t)(th->idx + 1) << 32) | serial;
    r->size = size;
    r->born_op = (uint32_t)atomic_load_explicit(&th->op_i, memory_order_relaxed);
    r->noscan = noscan;
    r->nslots = (uint8_t)((!noscan && size >= 16) ? ((size - 16) / 8 < MAXSLOTS ? (size - 16) / 8 : MAXSLOTS) : 0);
    MCHECK(th, all_zero(p, size), "fresh object of %u bytes is not zeroed", size);
    MCHECK(th, !is_pinned(p) && gc_pin_count(p) == 0, "fresh object is pinned");
    atomic_store(&r->state, ST_LIVE);
    live_add(th, serial);
    fill_content(p, r);
    if (rnd(th, 100) < 20) set_fin(th, code);

    uint32_t where = rnd(th, 100);
    if (where < 45) { /* a root: mostly a free one */
        int j = (int)rnd(th, NROOTS);
        for (int tries = 0; tries < 3 && th->root_code[j]; tries++) j = (int)rnd(th, NROOTS);
        uint32_t old = th->root_code[j];
        th->root_code[j] = code;
        if (old) recompute(th);
        th->rr->root[j] = p;
        return;
    }
    if (where < 75) { /* a slot of a scanned object (perhaps itself: then garbage) */
        uint32_t a = pick_live_scan(th);
        if (a) {
            struct rec *ar = rec_of(th, a);
            int i = (int)rnd(th, ar->nslots);
            ar->link[i] = code;
            if (a == code) {
                /* Linked from itself only: garbage (on a cycle: Go never
                 * finalizes it). The store adds a reference: before. */
                ((void **)p)[2 + i] = p;
                recompute(th);
            } else {
                recompute(th); /* the slot's old target may die */
                ((void **)ptr_of(ar))[2 + i] = p;
            }
            return;
        }
    }
    if (where < 85) { /* pinned, with its only pointer in malloc memory */
        int k = pick_pinner_with_room(th, 1);
        if (k >= 0 && pin_through(th, k, code)) {
            int m = (int)rnd(th, NMT);
            th->mtab[m] = p;
            th->mtab_code[m] = code;
            return;
        }
    }
    /* Garbage at once (perhaps with a finalizer that must run). */
    recompute(th);
}

NOINLINE static void op_link(struct thr *th) {
    uint32_t a = pick_live_scan(th);
    if (!a) return;
    struct rec *ar = rec_of(th, a);
    int i = (int)rnd(th, ar->nslots);
    uint32_t r = rnd(th, 100), target;
    if (r < 75)
        target = pick_live(th);
    else if (r < 90)
        target = CODE_SHARED | rnd(th, NSHARED);
    else
        target = 0;
    uint32_t old = ar->link[i];
    ar->link[i] = target;
    if (old && !(old & CODE_SHARED) && old != target) recompute(th);
    ((void **)ptr_of(ar))[2 + i] = link_ptr(th, target);
}

NOINLINE static void op_unlink(struct thr *th) {
    uint32_t a = pick_live_scan(th);
    if (!a) return;
    struct rec *ar = rec_of(th, a);
    int i = (int)rnd(th, ar->nslots);
    if (!ar->link[i]) return;
    ar->link[i] = 0;
    recompute(th);
    ((void **)ptr_of(ar))[2 + i] = NULL;
}

NOINLINE static void op_root_set(struct thr *th) {
    uint32_t c = pick_live(th);
    if (!c) return;
    int j = (int)rnd(th, NROOTS);
    uint32_t old = th->root_code[j];
    th->root_code[j] = c;
    if (old && old != c) recompute(th);
    th->rr->root[j] = link_ptr(th, c);
}

NOINLINE static void op_root_clear(struct thr *th) {
    int j0 = (int)rnd(th, NROOTS);
    for (int i = 0; i < NROOTS; i++) {
        int j = (j0 + i) % NROOTS;
        if (!th->root_code[j]) continue;
        th->root_code[j] = 0;
        recompute(th);
        th->rr->root[j] = NULL;
        return;
    }
}

NOINLINE static void op_pin(struct thr *th) {
    uint32_t c = rnd(th, 100) < 80 ? pick_live(th) : (CODE_SHARED | rnd(th, NSHARED));
    if (!c) return;
    int k = pick_pinner_with_room(th, 1);
    if (k < 0 || !pin_through(th, k, c)) return;
    if (rnd(th, 100) < 35) { /* again: through the same pinner or another */
        k = rnd(th, 2) ? k : pick_pinner_with_room(th, 1);
        if (k >= 0) pin_through(th, k, c);
    }
}

NOINLINE static void op_pin_many(struct thr *th) {
    int k = pick_pinner_with_room(th, 6);
    if (k < 0 || !th->nlive) return;
    int n = 2 + (int)rnd(th, 5);
    const void *ptrs[7];
    uint32_t codes[7];
    for (int i = 0; i < n; i++) {
        codes[i] = rnd(th, 100) < 85 ? pick_live(th) : (CODE_SHARED | rnd(th, NSHARED));
        struct rec *r = rec_of(th, codes[i]);
        ptrs[i] = (char *)ptr_of(r) + rnd(th, r->size);
    }
    uint32_t bad = rnd(th, 100);
    int local = 0;
    if (bad < 15) { /* one bad pointer: nothing may be pinned */
        int at = (int)rnd(th, (uint32_t)n + 1);
        for (int i = n; i > at; i--) ptrs[i] = ptrs[i - 1];
        ptrs[at] = bad < 5 ? NULL : bad < 10 ? (const void *)&local : (const void *)th->mtab;
        gc_status want = bad < 5 ? GC_ERR_NULL : GC_ERR_NOT_GC_POINTER;
        gc_status s = pinner_pin_many(&th->rr->pinner[k], ptrs, (size_t)n + 1);
        MCHECK(th, s == want, "pinner_pin_many with a bad pointer: %s, expected %s", check_status_name(s),
               check_status_name(want));
        for (int i = 0; i < n; i++) verify_obj(th, codes[i]); /* counts unchanged */
        return;
    }
    gc_status s = pinner_pin_many(&th->rr->pinner[k], ptrs, (size_t)n);
    MCHECK(th, s == GC_OK, "pinner_pin_many: %s", check_status_name(s));
    if (s != GC_OK) return;
    for (int i = 0; i < n; i++) {
        th->pm[k].code[th->pm[k].n++] = codes[i];
        if (codes[i] & CODE_SHARED)
            th->shared_pins[codes[i] & ~CODE_SHARED]++;
        else
            th->rec[codes[i] - 1].pins++, th->rec[codes[i] - 1].ever_pinned = 1;
    }
    for (int i = 0; i < n; i++) verify_obj(th, codes[i]);
}

NOINLINE static void op_unpin(struct thr *th) {
    int k = (int)rnd(th, NPIN);
    struct pmodel *pm = &th->pm[k];
    uint32_t was[PCAP];
    int n = pm->n;
    bool drop = false;
    for (int i = 0; i < n; i++) {
        uint32_t c = was[i] = pm->code[i];
        if (c & CODE_SHARED) {
            th->shared_pins[c & ~CODE_SHARED]--;
        } else if (--th->rec[c - 1].pins == 0) {
            drop = true;
        }
    }
    pm->n = 0;
    if (drop) recompute(th);
    pinner_unpin(&th->rr->pinner[k]);
    if (rnd(th, 100) < 10) pinner_unpin(&th->rr->pinner[k]); /* a second time: nothing */
    for (int i = 0; i < n; i++)
        if (is_live(th, was[i])) verify_obj(th, was[i]);
}

NOINLINE static void op_fin(struct thr *th) {
    uint32_t c = pick_live(th);
    if (!c) return;
    struct rec *r = rec_of(th, c);
    if (!r->has_fin) {
        set_fin(th, c);
    } else if (rnd(th, 100) < 25) {
        gc_status s = gc_set_finalizer(ptr_of(r), NULL, NULL);
        MCHECK(th, s == GC_OK, "clearing a finalizer: %s", check_status_name(s));
        r->has_fin = 0;
    } else {
        set_fin(th, c); /* replaces it with the same one */
        th->fins_set--;
    }
}

NOINLINE static void op_hide(struct thr *th) {
    uint32_t c = pick_live(th);
    if (!c) return;
    int m = (int)rnd(th, NMT);
    th->mtab[m] = ptr_of(rec_of(th, c));
    th->mtab_code[m] = c;
}

/* Uses a pointer that lives only in malloc memory, if the model says its object
 * is still touchable (pinned, or reachable some other way). */
NOINLINE static void op_mtab_use(struct thr *th) {
    int m = (int)rnd(th, NMT);
    uint32_t c = th->mtab_code[m];
    if (!c) return;
    if (!is_live(th, c)) { /* stale: never dereferenced */
        if (rnd(th, 2)) {
            th->mtab_code[m] = 0;
            th->mtab[m] = NULL;
        }
        return;
    }
    void *q = th->mtab[m];
    MCHECK(th, q == ptr_of(rec_of(th, c)), "malloc slot changed");
    verify_obj(th, c);
    if (rnd(th, 2)) {
        int k = pick_pinner_with_room(th, 1);
        if (k >= 0) pin_through(th, k, c);
    }
}

NOINLINE static void op_check_ptr(struct thr *th) {
    uint32_t a = pick_live_scan(th);
    if (!a) return;
    int want = model_check_pointer(th, a);
    if (want < 0) return;
    gc_status s = gc_check_pointer(ptr_of(rec_of(th, a)));
    gc_status w = want ? GC_ERR_UNPINNED_POINTER : GC_OK;
    if (want) th->cp_unpinned++;
    else th->cp_ok++;
    MCHECK(th, s == w, "gc_check_pointer(t%d#%u): %s, the model %s", th->idx, a - 1, check_status_name(s),
           check_status_name(w));
}

NOINLINE static void op_collect(struct thr *th) {
    uint32_t r = rnd(th, 100);
    if (r < 20) scrub_stack();
    gc_collect();
    th->collects++;
    th->live_sum += th->nlive;
    if (th->nlive > th->live_max) th->live_max = th->nlive;
    for (int k = 0; k < th->nlive; k++) th->pinned_sum += th->rec[th->live[k]].pins > 0;
    if (r % 3 == 0) gc_run_finalizers();
    if (r < 15) MCHECK(th, gc_verify_heap() == GC_OK, "gc_verify_heap failed");
    check_all(th);
}

static void do_op(struct thr *th) {
    uint32_t x = rnd(th, (uint32_t)M.weight_total);
    int op = 0;
    while (op < OP_COUNT - 1 && x >= (uint32_t)op_weight[op]) x -= (uint32_t)op_weight[op++];
    th->op_name = op_names[op];
    th->count[op]++;
    switch (op) {
    case OP_ALLOC: op_alloc(th); break;
    case OP_LINK: op_link(th); break;
    case OP_UNLINK: op_unlink(th); break;
    case OP_ROOT_SET: op_root_set(th); break;
    case OP_ROOT_CLEAR: op_root_clear(th); break;
    case OP_PIN: op_pin(th); break;
    case OP_PIN_MANY: op_pin_many(th); break;
    case OP_UNPIN: op_unpin(th); break;
    case OP_FIN: op_fin(th); break;
    case OP_HIDE: op_hide(th); break;
    case OP_MTAB_USE: op_mtab_use(th); break;
    case OP_CHECK_ONE: {
        uint32_t c = rnd(th, 10) ? pick_live(th) : (CODE_SHARED | rnd(th, NSHARED));
        if (c) verify_obj(th, c);
        break;
    }
    case OP_CHECK_PTR: op_check_ptr(th); break;
    case OP_COLLECT: op_collect(th); break;
    default: break;
    }
}

/* Shared objects at a barrier: the pin count is the sum over the threads. */
NOINLINE static void check_shared_exact(struct thr *th) {
    for (int s = 0; s < NSHARED; s++) {
        void *p = ptr_of(&M.shared_rec[s]);
        int want = shared_pins_total(s);
        size_t n = gc_pin_count(p);
        MCHECK(th, n == (size_t)want && is_pinned(p) == (want > 0),
               "at a barrier: shared#%d pin count %zu, is_pinned %d, the threads hold %d", s, n, is_pinned(p), want);
        const char *why = content_bad(p, &M.shared_rec[s]);
        MCHECK(th, !why, "shared#%d: %s", s, why);
    }
}

/* Unpins everything, clears the roots: every object of the thread is dead. */
NOINLINE static void teardown(struct thr *th) {
    th->op_name = "teardown";
    for (int k = 0; k < NPIN; k++) {
        for (int i = 0; i < th->pm[k].n; i++) {
            uint32_t c = th->pm[k].code[i];
            if (c & CODE_SHARED)
                th->shared_pins[c & ~CODE_SHARED]--;
            else
                th->rec[c - 1].pins--;
        }
        th->pm[k].n = 0;
    }
    memset(th->root_code, 0, sizeof th->root_code);
    recompute(th);
    MCHECK(th, th->nlive == 0, "model: %d objects still touchable after teardown", th->nlive);
    for (int k = 0; k < NPIN; k++) pinner_unpin(&th->rr->pinner[k]);
    memset(th->rr->root, 0, sizeof th->rr->root);
    escape(th->rr);
    MCHECK(th, gc_remove_roots(th->rr, sizeof *th->rr) == GC_OK, "gc_remove_roots failed");
    free(th->rr);
    th->rr = NULL;
}

static void *worker(void *arg) {
    struct thr *th = arg;
    th->rr = calloc(1, sizeof *th->rr);
    th->mtab = calloc(NMT, sizeof *th->mtab);
    if (!th->rr || !th->mtab) abort();
    MCHECK(th, gc_add_roots(th->rr, sizeof *th->rr) == GC_OK, "gc_add_roots failed");
    long rounds = (th->ops + ROUND - 1) / ROUND;
    for (long rd = 0; rd < rounds; rd++) {
        for (long i = rd * ROUND; i < (rd + 1) * ROUND && i < th->ops && !stopping(); i++) {
            atomic_store_explicit(&th->op_i, i, memory_order_relaxed);
            do_op(th);
        }
        if (M.nthreads > 1) {
            pthread_barrier_wait(&M.bar);
            atomic_store_explicit(&th->op_i, (rd + 1) * ROUND, memory_order_relaxed);
            th->op_name = "barrier";
            if (th->idx == 0 && !stopping()) check_shared_exact(th);
            pthread_barrier_wait(&M.bar);
        }
    }
    atomic_store_explicit(&th->op_i, th->ops, memory_order_relaxed);
    th->op_name = "final check";
    if (!stopping()) check_all(th);
    teardown(th);
    free(th->mtab);
    th->mtab = NULL;
    scrub_stack();
    return NULL;
}

/* ------------------------------------------------------------ the test body */

static void on_crash(int sig) {
    ssize_t w = write(2, replay_msg, strlen(replay_msg));
    (void)w;
    raise(sig); /* SA_RESETHAND: the default action now */
}

NOINLINE static void make_shared(void) {
    static const uint32_t sizes[NSHARED] = {16, 48, 100, 640, 1000, 5000, 40000, 24};
    for (int s = 0; s < NSHARED; s++) {
        struct rec *r = &M.shared_rec[s];
        r->size = sizes[s];
        r->noscan = s & 1;
        r->nslots = 0;
        r->tag = ((uint64_t)SHARED_OWNER << 32) | (uint32_t)s;
        void *p = r->noscan ? gc_alloc_noscan(r->size) : gc_alloc(r->size);
        REQUIRE(p != NULL);
        r->hidden = HIDE(p);
        fill_content(p, r);
        atomic_store(&r->state, ST_LIVE);
        r->has_fin = 1;
        CHECK_STATUS(gc_set_finalizer(p, model_finalizer, fin_arg(SHARED_OWNER, (uint32_t)s)), GC_OK);
        shared_root[s] = p;
    }
}

NOINLINE static void drop_shared(void) {
    for (int s = 0; s < NSHARED; s++) {
        int pins = shared_pins_total(s);
        void *p = ptr_of(&M.shared_rec[s]);
        MCHECK(NULL, pins == 0 && gc_pin_count(p) == 0, "shared#%d: pin count %zu after every thread unpinned (model %d)",
               s, gc_pin_count(p), pins);
        MCHECK(NULL, atomic_load(&M.shared_rec[s].fin_runs) == 0, "finalizer of rooted shared#%d ran", s);
        atomic_store_explicit(&M.shared_rec[s].state, ST_DEAD, memory_order_release);
    }
    memset(shared_root, 0, sizeof shared_root);
    escape(shared_root);
}

/* Garbage with finalizers: the finalizer thread runs these, so its stack no
 * longer holds the last object it finalized (which would keep what that one
 * reaches, and their finalizers, back). */
static atomic_int dummy_fin;
NOINLINE static void dummy_garbage(int n) {
    for (int i = 0; i < n; i++) {
        void *p = gc_alloc(32);
        if (p) gc_set_finalizer(p, count_fin, &dummy_fin);
    }
}

/* The final graph of every object: node ids are per-thread bases + serial, the
 * shared objects last. */
struct graph {
    uint32_t n, base[MAXT + 1];
};

static struct rec *node_rec(const struct graph *g, uint32_t v, int *owner) {
    for (int t = 0; t < M.nthreads; t++)
        if (v < g->base[t + 1]) {
            *owner = t;
            return &M.thr[t]->rec[v - g->base[t]];
        }
    *owner = -1;
    return &M.shared_rec[v - g->base[M.nthreads]];
}

static uint32_t node_of(const struct graph *g, int owner, uint32_t code) {
    if (code & CODE_SHARED) return g->base[M.nthreads] + (code & ~CODE_SHARED);
    return g->base[owner] + code - 1;
}

/* Tarjan's strongly connected components, without recursion. Sets cyclic[v]
 * for every node on a cycle (a component of several nodes, or a self link). */
static void find_cycles(const struct graph *g, uint8_t *cyclic) {
    uint32_t n = g->n;
    int32_t *index = malloc(n * sizeof *index), *low = malloc(n * sizeof *low);
    uint32_t *stk = malloc(n * sizeof *stk), *cs = malloc(n * sizeof *cs);
    uint8_t *cslot = malloc(n), *on = calloc(n, 1);
    if (!index || !low || !stk || !cs || !cslot || !on) abort();
    for (uint32_t v = 0; v < n; v++) index[v] = -1;
    int32_t next = 0;
    uint32_t sp = 0, csp = 0;
    for (uint32_t root = 0; root < n; root++) {
        if (index[root] >= 0) continue;
        cs[csp] = root;
        cslot[csp++] = 0;
        index[root] = low[root] = next++;
        stk[sp++] = root;
        on[root] = 1;
        while (csp) {
            uint32_t v = cs[csp - 1];
            int owner;
            struct rec *r = node_rec(g, v, &owner);
            if (cslot[csp - 1] < r->nslots) {
                uint32_t c = r->link[cslot[csp - 1]++];
                if (!c) continue;
                uint32_t w = node_of(g, owner, c);
                if (w == v) cyclic[v] = 1;
                if (index[w] < 0) {
                    index[w] = low[w] = next++;
                    stk[sp++] = w;
                    on[w] = 1;
                    cs[csp] = w;
                    cslot[csp++] = 0;
                } else if (on[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            csp--;
            if (csp && low[v] < low[cs[csp - 1]]) low[cs[csp - 1]] = low[v];
            if (low[v] == index[v]) {
                uint32_t top = sp, w;
                do {
                    w = stk[--sp];
                    on[w] = 0;
                } while (w != v);
                if (top - sp > 1)
                    for (uint32_t i = sp; i < top; i++) cyclic[stk[i]] = 1;
            }
        }
    }
    free(index);
    free(low);
    free(stk);
    free(cs);
    free(cslot);
    free(on);
}

static void successors_push(const struct graph *g, uint32_t v, uint32_t *q, uint32_t *qn, uint32_t *seen, uint32_t stamp) {
    int owner;
    struct rec *r = node_rec(g, v, &owner);
    for (int i = 0; i < r->nslots; i++) {
        uint32_t c = r->link[i];
        if (!c) continue;
        uint32_t w = node_of(g, owner, c);
        if (seen[w] == stamp) continue;
        seen[w] = stamp;
        q[(*qn)++] = w;
    }
}

/* Everything is dead now. Which finalizers must run (Go never runs one that a
 * finalizer cycle reaches), did at least 90% of them run, exactly once, each
 * after the finalizers of the objects that reach it? */
NOINLINE static void final_finalizer_check(void) {
    struct graph g;
    g.n = 0;
    for (int t = 0; t < M.nthreads; t++) {
        g.base[t] = g.n;
        g.n += M.thr[t]->nrec;
    }
    g.base[M.nthreads] = g.n;
    g.n += NSHARED;
    uint8_t *cyclic = calloc(g.n, 1), *poisoned = calloc(g.n, 1);
    uint32_t *q = malloc(g.n * sizeof *q), *seen = calloc(g.n, sizeof *seen);
    if (!cyclic || !poisoned || !q || !seen) abort();
    find_cycles(&g, cyclic);
    /* Poisoned: reachable (one step or more) from a finalizer on a cycle. */
    uint32_t qn = 0, stamp = 1;
    for (uint32_t v = 0; v < g.n; v++) {
        int owner;
        if (cyclic[v] && node_rec(&g, v, &owner)->has_fin) successors_push(&g, v, q, &qn, seen, stamp);
    }
    for (uint32_t h = 0; h < qn; h++) {
        poisoned[q[h]] = 1;
        successors_push(&g, q[h], q, &qn, seen, stamp);
    }
    long with_fin = 0, expected = 0, npoisoned = 0;
    for (uint32_t v = 0; v < g.n; v++) {
        int owner;
        struct rec *r = node_rec(&g, v, &owner);
        if (atomic_load(&r->state) != ST_DEAD) MFAIL(NULL, "model: node %u not dead at the end", v);
        if (!r->has_fin) continue;
        with_fin++;
        if (poisoned[v])
            npoisoned++;
        else
            expected++;
    }

    /* Collect until every expected finalizer ran, or nothing moves for a while. */
    long ran = 0, prev = -1;
    int stall = 0, rounds = 0;
    double t0 = check_now();
    while (rounds < 400 && stall < 12 && check_now() - t0 < 20) {
        rounds++;
        dummy_garbage(8);
        scrub_stack();
        gc_collect();
        /* The finalizer thread runs them (this thread would leave the last
         * object it finalized on its own stack, keeping what it reaches). */
        for (int w = 0; w < 200; w++) {
            gc_stats st;
            gc_get_stats(&st);
            if (st.finalizers_queued == 0) break;
            sleep_ms(1);
        }
        if (stall >= 6) gc_run_finalizers(); /* in case that thread cannot run */
        ran = 0;
        for (uint32_t v = 0; v < g.n; v++) {
            int owner;
            struct rec *r = node_rec(&g, v, &owner);
            ran += r->has_fin && !poisoned[v] && atomic_load(&r->fin_runs) > 0;
        }
        if (ran == expected) break;
        stall = ran == prev ? stall + 1 : 0;
        prev = ran;
    }
    fprintf(stderr, "    finalizers: %ld set on objects now dead, %ld must run (%ld behind finalizer cycles), %ld ran "
            "after %d final rounds\n", with_fin, expected, npoisoned, ran, rounds);
    MCHECK(NULL, ran * 10 >= expected * 9, "only %ld of the %ld finalizers that must run ran", ran, expected);
    if (ran < expected) { /* which ones: a conservative collector may keep a few */
        int shown = 0;
        for (uint32_t v = 0; v < g.n && shown < 8; v++) {
            int owner;
            struct rec *r = node_rec(&g, v, &owner);
            if (!r->has_fin || poisoned[v] || atomic_load(&r->fin_runs)) continue;
            shown++;
            fprintf(stderr, "      not finalized: t%d#%u, %u bytes%s%s, born at op %u, died at op %u, %d pending parents; pin count now %zu\n",
                    owner, (unsigned)(v - g.base[owner < 0 ? M.nthreads : owner]), r->size, r->noscan ? " noscan" : "",
                    r->ever_pinned ? " once pinned" : "", r->born_op, r->died_op, atomic_load(&r->pend_parents),
                    gc_pin_count(UNHIDE(r->hidden))); /* safe on any address */
        }
    }

    /* Never a cleared finalizer; at most once (also checked as they ran);
     * order: no finalizer before that of an object reaching it. */
    long order_checked = 0;
    for (uint32_t v = 0; v < g.n; v++) {
        int owner;
        struct rec *r = node_rec(&g, v, &owner);
        int runs = atomic_load(&r->fin_runs);
        MCHECK(NULL, runs <= 1, "a finalizer ran %d times", runs);
        if (!r->has_fin) {
            MCHECK(NULL, runs == 0, "finalizer of node %u ran though it was cleared (or never set)", v);
            continue;
        }
        if (cyclic[v]) continue;
        /* The finalizer objects that v reaches through objects without one. */
        stamp++;
        qn = 0;
        successors_push(&g, v, q, &qn, seen, stamp);
        for (uint32_t h = 0; h < qn && h < 4096; h++) {
            uint32_t w = q[h];
            int wo;
            struct rec *wr = node_rec(&g, w, &wo);
            if (!wr->has_fin) {
                successors_push(&g, w, q, &qn, seen, stamp);
                continue;
            }
            if (w == v || atomic_load(&wr->fin_runs) == 0) continue;
            order_checked++;
            unsigned sv = atomic_load(&r->fin_seq), sw = atomic_load(&wr->fin_seq);
            MCHECK(NULL, runs > 0 && sv < sw,
                   "finalizer order: node %u ran (seq %u) though node %u, which reaches it, %s (seq %u)", w, sw, v,
                   runs ? "ran later" : "did not run", sv);
        }
    }
    fprintf(stderr, "    finalizer order checked on %ld pairs\n", order_checked);
    free(cyclic);
    free(poisoned);
    free(q);
    free(seen);
}

static uint64_t env_u64(const char *name, uint64_t dflt, bool *given) {
    const char *v = getenv(name);
    *given = v && *v;
    if (!*given) return dflt;
    return strtoull(v, NULL, 0);
}

static void run_model(int nthreads) {
    bool given;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = env_u64("GCPIN_MODEL_SEED", mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid()) % 1000000000ull, &given);
    long ops = (long)env_u64("GCPIN_MODEL_OPS", MODEL_DEFAULT_OPS, &given);
    if (ops < 1) ops = 1;
    M.nthreads = nthreads;
    for (int i = 0; i < OP_COUNT; i++) M.weight_total += op_weight[i];
    M.seed = seed;
    M.ops = ops;
    snprintf(replay_msg, sizeof replay_msg, "    replay with GCPIN_MODEL_SEED=%" PRIu64 " GCPIN_MODEL_OPS=%ld\n", seed, ops);
    fprintf(stderr, "    model: seed %" PRIu64 ", %ld ops, %d thread%s%s%s\n", seed, ops, nthreads,
            nthreads > 1 ? "s" : "", getenv("GCPIN_STRESS") ? ", GCPIN_STRESS=" : "",
            getenv("GCPIN_STRESS") ? getenv("GCPIN_STRESS") : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = (int)(SA_RESETHAND | SA_NODEFER);
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);

    double start = check_now();
    make_shared();
    long per = (ops + nthreads - 1) / nthreads;
    for (int t = 0; t < nthreads; t++) {
        struct thr *th = calloc(1, sizeof *th);
        REQUIRE(th != NULL);
        th->idx = t;
        th->seed = mix64(seed ^ mix64((uint64_t)t + 1));
        th->rng = th->seed;
        th->ops = per;
        th->maxrec = (uint32_t)per + 1;
        th->rec = calloc(th->maxrec, sizeof *th->rec); /* untouched pages cost nothing */
        REQUIRE(th->rec != NULL);
        th->op_name = "start";
        M.thr[t] = th;
    }
    if (nthreads > 1) REQUIRE(pthread_barrier_init(&M.bar, NULL, (unsigned)nthreads) == 0);
    pthread_t tid[MAXT];
    for (int t = 0; t < nthreads; t++) REQUIRE(pthread_create(&tid[t], NULL, worker, M.thr[t]) == 0);
    for (int t = 0; t < nthreads; t++) pthread_join(tid[t], NULL);
    double ops_done = check_now();

    drop_shared();
    if (check_failures() == 0) final_finalizer_check();
    CHECK_STATUS(gc_verify_heap(), GC_OK);

    long allocs = 0, deaths = 0, fins = 0, collects = 0, pins = 0, live_sum = 0, pinned_sum = 0, cp_ok = 0, cp_unp = 0;
    int live_max = 0;
    for (int t = 0; t < nthreads; t++) {
        allocs += M.thr[t]->nrec;
        deaths += M.thr[t]->deaths;
        fins += M.thr[t]->fins_set;
        collects += M.thr[t]->collects;
        pins += M.thr[t]->count[OP_PIN] + M.thr[t]->count[OP_PIN_MANY];
        live_sum += M.thr[t]->live_sum;
        cp_ok += M.thr[t]->cp_ok;
        cp_unp += M.thr[t]->cp_unpinned;
        pinned_sum += M.thr[t]->pinned_sum;
        if (M.thr[t]->live_max > live_max) live_max = M.thr[t]->live_max;
    }
    gc_stats st;
    gc_get_stats(&st);
    fprintf(stderr, "    model: %ld allocations, %ld deaths, %ld finalizers set, %ld pin ops, %ld explicit + %ju total "
            "collections; %.2f s of operations, %.2f s in all\n", allocs, deaths, fins, pins, collects,
            (uintmax_t)st.num_gc, ops_done - start, check_now() - start);
    fprintf(stderr, "    model: touchable objects per thread at collections: %.0f on average (%.0f pinned), %d at most; "
            "gc_check_pointer: %ld GC_OK, %ld unpinned\n",
            collects ? (double)live_sum / (double)collects : 0.0, collects ? (double)pinned_sum / (double)collects : 0.0,
            live_max, cp_ok, cp_unp);
    if (check_failures()) fputs(replay_msg, stderr);
}

TEST(random_ops_on_one_thread_match_the_model) { run_model(1); }

TEST(random_ops_on_four_threads_with_shared_pins_match_the_model) { run_model(4); }
