/* gc_check_pointer, cgocheck for C (Go's TestPinnerReuse and
 * TestPinnerCgoCheck*): a heap object handed to C must not hold pointers to
 * unpinned heap objects; pinned ones are followed, transitively. */
#include "check.h"

#include <sys/uio.h>

typedef struct obj {
    int64_t x, y, z;
} obj;

/* Go's objWith[T]: three words, then the pointer (at offset 24). */
typedef struct obj_with {
    int64_t x, y, z;
    void *o;
} obj_with;

static obj *new_obj(void) {
    obj *o = gc_alloc(sizeof *o);
    REQUIRE(o != NULL);
    return o;
}

static obj_with *new_obj_with(void *o) {
    obj_with *w = gc_alloc(sizeof *w);
    REQUIRE(w != NULL);
    w->o = o;
    return w;
}

/* ------------------------------------------------------- the iovec case */

#define IOV_N 8
#define BUF_SIZE 4096

TEST(iovec_array_is_unpinned_until_its_buffers_are_pinned) {
    struct iovec *iov = gc_alloc(IOV_N * sizeof *iov);
    REQUIRE(iov != NULL);
    for (int i = 0; i < IOV_N; i++) {
        iov[i].iov_base = gc_alloc_noscan(BUF_SIZE);
        REQUIRE(iov[i].iov_base != NULL);
        iov[i].iov_len = BUF_SIZE;
    }
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    gc_pinner pinner = {0};
    /* All but the last: still an error. */
    for (int i = 0; i < IOV_N - 1; i++) CHECK_STATUS(pinner_pin(&pinner, iov[i].iov_base), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, iov[IOV_N - 1].iov_base), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_OK);
    /* Through an interior pointer into the array: the same object. */
    CHECK_STATUS(gc_check_pointer(&iov[3].iov_len), GC_OK);
    /* Buffers are noscan: nothing in them is checked. */
    for (int i = 0; i < IOV_N; i++) {
        memcpy(iov[i].iov_base, &iov, sizeof iov); /* a heap pointer inside a buffer */
        CHECK_STATUS(gc_check_pointer(iov[i].iov_base), GC_OK);
    }
    pinner_unpin(&pinner);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    /* Pinning the array itself does not help: its pointees are what matters. */
    CHECK_STATUS(pinner_pin(&pinner, iov), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    pinner_unpin(&pinner);
}

TEST(iovec_with_interior_buffer_pointers_is_ok_once_buffers_are_pinned) {
    struct iovec *iov = gc_alloc(IOV_N * sizeof *iov);
    char *bufs[IOV_N];
    REQUIRE(iov != NULL);
    for (int i = 0; i < IOV_N; i++) {
        bufs[i] = gc_alloc_noscan(BUF_SIZE);
        REQUIRE(bufs[i] != NULL);
        iov[i].iov_base = bufs[i] + 100 * i; /* the middle of a buffer */
        iov[i].iov_len = BUF_SIZE - 100 * (size_t)i;
    }
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
    gc_pinner pinner = {0};
    const void *bases[IOV_N];
    for (int i = 0; i < IOV_N; i++) bases[i] = bufs[i];
    CHECK_STATUS(pinner_pin_many(&pinner, bases, IOV_N), GC_OK);
    CHECK_STATUS(gc_check_pointer(iov), GC_OK);
    pinner_unpin(&pinner);
    CHECK_STATUS(gc_check_pointer(iov), GC_ERR_UNPINNED_POINTER);
}

/* ----------------------------------------------------- Go's cgocheck cases */

TEST(reused_pinner_check) { /* TestPinnerReuse */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    void **p2 = gc_alloc(sizeof(void *));
    REQUIRE(p2 != NULL);
    *p2 = p;
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_OK);
    pinner_unpin(&pinner);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_OK);
    pinner_unpin(&pinner);
}

TEST(pointer_to_pointer) { /* TestPinnerCgoCheckPtr2Ptr / Ptr2UnsafePtr / Ptr2UnknownPtr */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    obj_with *p2 = new_obj_with(p);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_OK);
    pinner_unpin(&pinner);
}

TEST(slice_header_pointing_into_an_array) { /* TestPinnerCgoCheckSlice */
    gc_pinner pinner = {0};
    int64_t *arr = gc_alloc(3 * sizeof(int64_t));
    REQUIRE(arr != NULL);
    arr[0] = 1;
    arr[1] = 2;
    arr[2] = 3;
    struct {
        int64_t *ptr;
        size_t len, cap;
    } *sl = gc_alloc(3 * sizeof(void *));
    REQUIRE(sl != NULL);
    sl->ptr = &arr[1]; /* an interior pointer */
    sl->len = sl->cap = 2;
    CHECK_STATUS(gc_check_pointer(sl), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, &arr[0]), GC_OK); /* pins the whole array */
    CHECK_STATUS(gc_check_pointer(sl), GC_OK);
    pinner_unpin(&pinner);
}

TEST(string_header_pointing_into_bytes) { /* TestPinnerCgoCheckString */
    gc_pinner pinner = {0};
    char *b = gc_alloc_noscan(6);
    REQUIRE(b != NULL);
    memcpy(b, "foobar", 6);
    struct {
        const char *data;
        size_t len;
    } *str = gc_alloc(2 * sizeof(void *));
    REQUIRE(str != NULL);
    str->data = b;
    str->len = 6;
    CHECK_STATUS(gc_check_pointer(str), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, b), GC_OK);
    CHECK_STATUS(gc_check_pointer(str), GC_OK);
    pinner_unpin(&pinner);
}

TEST(pinned_object_holding_an_unpinned_pointer) { /* TestPinnerCgoCheckPinned2UnpinnedPanics */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    obj_with *p2 = new_obj_with(p);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p2), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    pinner_unpin(&pinner);
}

TEST(pointer_to_pinned_holding_an_unpinned_pointer) { /* TestPinnerCgoCheckPtr2Pinned2Unpinned */
    gc_pinner pinner = {0};
    obj *p = new_obj();
    obj_with *p2 = new_obj_with(p);
    obj_with *p3 = new_obj_with(p2);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(gc_check_pointer(p3), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p2), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(gc_check_pointer(p3), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK_STATUS(gc_check_pointer(p2), GC_OK);
    CHECK_STATUS(gc_check_pointer(p3), GC_OK);
    pinner_unpin(&pinner);
    CHECK_STATUS(gc_check_pointer(p3), GC_ERR_UNPINNED_POINTER);
}

/* --------------------------------------------- cycles, large objects, ends */

TEST(pinned_cycles_are_checked_without_looping) {
    gc_pinner pinner = {0};
    obj_with *a = new_obj_with(NULL);
    obj_with *b = new_obj_with(a);
    a->o = b; /* a <-> b */
    obj_with *self = new_obj_with(NULL);
    self->o = self;
    CHECK_STATUS(gc_check_pointer(a), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(gc_check_pointer(self), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(pinner_pin(&pinner, a), GC_OK);
    CHECK_STATUS(pinner_pin(&pinner, b), GC_OK);
    CHECK_STATUS(pinner_pin(&pinner, self), GC_OK);
    CHECK_STATUS(gc_check_pointer(a), GC_OK);
    CHECK_STATUS(gc_check_pointer(b), GC_OK);
    CHECK_STATUS(gc_check_pointer(self), GC_OK);
    pinner_unpin(&pinner);
}

TEST(large_object_is_checked_to_its_last_word) {
    gc_pinner pinner = {0};
    const size_t size = 256 << 10;
    void **big = gc_alloc(size);
    REQUIRE(big != NULL);
    CHECK_STATUS(gc_check_pointer(big), GC_OK); /* zeroed: no pointers */
    obj *p = new_obj();
    big[size / sizeof(void *) - 1] = p;
    CHECK_STATUS(gc_check_pointer(big), GC_ERR_UNPINNED_POINTER);
    CHECK_STATUS(gc_check_pointer((char *)big + size / 2), GC_ERR_UNPINNED_POINTER); /* interior */
    CHECK_STATUS(pinner_pin(&pinner, p), GC_OK);
    CHECK_STATUS(gc_check_pointer(big), GC_OK);
    pinner_unpin(&pinner);
}

TEST(pointers_outside_the_heap_are_not_checked) {
    static void *global_slot;
    obj *unpinned = new_obj();
    /* An object holding only non-heap pointers, and the zero-size address. */
    void **holder = gc_alloc(4 * sizeof(void *));
    REQUIRE(holder != NULL);
    int on_stack = 0;
    holder[0] = &on_stack;
    holder[1] = &global_slot;
    holder[2] = gc_alloc(0);
    holder[3] = (void *)(uintptr_t)0x1234;
    CHECK_STATUS(gc_check_pointer(holder), GC_OK);
    /* C memory is not checked, even when it holds an unpinned heap pointer. */
    global_slot = unpinned;
    void **c_mem = malloc(sizeof(void *));
    REQUIRE(c_mem != NULL);
    *c_mem = unpinned;
    CHECK_STATUS(gc_check_pointer(&global_slot), GC_OK);
    CHECK_STATUS(gc_check_pointer(c_mem), GC_OK);
    void *on_stack_ptr = unpinned;
    CHECK_STATUS(gc_check_pointer(&on_stack_ptr), GC_OK);
    /* A noscan object is never checked. */
    void **noscan = gc_alloc_noscan(sizeof(void *));
    REQUIRE(noscan != NULL);
    *noscan = unpinned;
    CHECK_STATUS(gc_check_pointer(noscan), GC_OK);
    /* An unpinned object with no pointers is fine to hand over. */
    CHECK_STATUS(gc_check_pointer(unpinned), GC_OK);
    CHECK_STATUS(gc_check_pointer(NULL), GC_ERR_NULL);
    free(c_mem);
}

#define FREED_N 200
static uintptr_t freed_hidden[FREED_N];
static void *make_obj_with(void) { return new_obj_with(NULL); }

TEST(freed_slot_is_not_allocated) {
    REQUIRE(make_freed_slots(make_obj_with, freed_hidden, FREED_N));
    int not_allocated = 0;
    for (int i = 0; i < FREED_N; i++) {
        gc_status s = gc_check_pointer(UNHIDE(freed_hidden[i]));
        CHECKF(s == GC_ERR_NOT_ALLOCATED || s == GC_OK, "checking a freed slot: %s", check_status_name(s));
        not_allocated += s == GC_ERR_NOT_ALLOCATED;
    }
    CHECKF(not_allocated >= FREED_N * 9 / 10, "only %d of %d freed slots reported GC_ERR_NOT_ALLOCATED",
           not_allocated, FREED_N);
}
