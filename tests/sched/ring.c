/* Unit tests for sched/ring.c: the worker's local run queue.
 *
 * Tasks here are fake: zeroed blocks of sizeof(struct weft__task), known by
 * their index in one array. The ring only stores the pointers; the injector
 * (overflow) links them through `qnode`. Every test is written against
 * WEFT_RING_CAP, so it holds for the default ring and for the 4-slot ring
 * of a WEFT_SMALL_QUEUES build, where overflow and wrap happen constantly. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sched/injector.h"
#include "sched/ring.h"
#include "sched/task.h"
#include "support/fake_tasks.h"
#include "support/rng.h"
#include "support/sanitized.h"

#define CAP WEFT_RING_CAP
#define HALF (WEFT_RING_CAP / 2u)

/* The ring hands an overflow back to its owner, and the scheduler moves it
 * to the injector as a batch; these helpers keep that pairing, so the cases
 * below check where every task ends up. */
static bool push_or_spill(weft__ring *r, struct weft__task *t, weft__injector *inj)
{
    struct weft__task *spill[WEFT_RING_SPILL];
    unsigned n = weft__ring_push_owner(r, t, spill);
    assert_true(n <= WEFT_RING_SPILL);
    assert_true(n == 0 || spill[n - 1] == t); /* the new task comes last */
    for (unsigned i = 0; i < n; i++)
        inj_push(inj, spill[i]);
    return n > 0;
}

/* Ring positions every single-threaded case runs from: the start, a slot
 * index that is not a multiple of the capacity, and just before the u32
 * indices wrap (only index differences may matter). */
static const uint32_t starts[] = {
    0u, 1u, HALF + 1u, UINT32_MAX - CAP - 1u, UINT32_MAX - HALF, UINT32_MAX,
};
#define NSTARTS (sizeof starts / sizeof starts[0])

/* ---- fixtures ---------------------------------------------------------- */

struct queues {
    weft__ring src;
    weft__ring dst;
    weft__injector inj;
};

struct fixture {
    struct queues *q;
    struct weft__task *tasks;
    size_t ntasks;
};

static struct queues *queues_new(void)
{
    struct queues *q = aligned_zalloc(sizeof *q);
    weft__ring_init(&q->src);
    weft__ring_init(&q->dst);
    weft__injector_init(&q->inj);
    return q;
}

static void queues_free(struct queues *q)
{
    weft__injector_fini(&q->inj);
    free(q);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->q = queues_new();
    f->ntasks = 4 * CAP + 8;
    f->tasks = tasks_new(f->ntasks);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    queues_free(f->q);
    free(f->tasks);
    free(f);
    return 0;
}

/* Reset an empty ring so that its next push lands on index `idx`. Relies
 * on the head encoding documented in ring.h ((steal << 32) | real); it is
 * the only way to reach the u32 wrap without 2^32 operations. */
static void ring_reset_at(weft__ring *r, uint32_t idx)
{
    weft__ring_init(r);
    atomic_store(&r->head, ((uint64_t)idx << 32) | idx);
    atomic_store(&r->tail, idx);
    r->front_end = idx; /* no run of front pushes */
    assert_int_equal(weft__ring_len(r), 0);
}

static size_t index_of(struct fixture *f, struct weft__task *t)
{
    return task_index(f->tasks, f->ntasks, t);
}

/* Push tasks [from, from + n) with no overflow expected. */
static void push_range(struct fixture *f, weft__ring *r, size_t from, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned before = weft__ring_len(r);
        assert_false(push_or_spill(r, &f->tasks[from + i], &f->q->inj));
        assert_int_equal(weft__ring_len(r), before + 1);
    }
}

/* Pop tasks [from, from + n) in that order. */
static void pop_seq(struct fixture *f, weft__ring *r, size_t from, size_t n)
{
    unsigned len = weft__ring_len(r);
    assert_true(len >= n);
    for (size_t i = 0; i < n; i++) {
        struct weft__task *t = weft__ring_pop_owner(r);
        assert_int_equal(index_of(f, t), from + i);
        assert_int_equal(weft__ring_len(r), len - i - 1);
    }
}

/* Pop exactly tasks [from, from + n) in that order, then nothing. */
static void expect_pops(struct fixture *f, weft__ring *r, size_t from, size_t n)
{
    pop_seq(f, r, from, n);
    assert_null(weft__ring_pop_owner(r));
    assert_true(weft__ring_is_empty(r));
}

static void expect_injector_empty(struct fixture *f)
{
    assert_true(weft__injector_is_empty(&f->q->inj));
    assert_null(inj_pop(&f->q->inj));
}

/* ---- owner push / pop ---------------------------------------------------- */

static void test_ring_new_ring_is_empty(void **state)
{
    struct fixture *f = *state;
    unsigned stolen = 123;
    assert_int_equal(weft__ring_len(&f->q->src), 0);
    assert_true(weft__ring_is_empty(&f->q->src));
    assert_null(weft__ring_pop_owner(&f->q->src));
    assert_null(weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen));
    assert_int_equal(stolen, 0);
    assert_true(weft__ring_is_empty(&f->q->dst));
}

static void test_ring_pop_returns_fifo_order(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        /* A full ring (exactly CAP) still takes every push locally. */
        push_range(f, &f->q->src, 0, CAP);
        assert_int_equal(weft__ring_len(&f->q->src), CAP);
        expect_pops(f, &f->q->src, 0, CAP);
        expect_injector_empty(f);
    }
}

static void test_ring_pop_interleaved_with_push_keeps_fifo_order(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        /* Push two, pop one, until full: the ring never reorders. */
        size_t pushed = 0, popped = 0;
        for (;;) {
            push_range(f, &f->q->src, pushed++, 1);
            if (weft__ring_len(&f->q->src) == CAP)
                break;
            push_range(f, &f->q->src, pushed++, 1);
            if (weft__ring_len(&f->q->src) == CAP)
                break;
            struct weft__task *t = weft__ring_pop_owner(&f->q->src);
            assert_int_equal(index_of(f, t), popped++);
        }
        assert_int_equal(pushed - popped, CAP);
        expect_pops(f, &f->q->src, popped, pushed - popped);
        expect_injector_empty(f);
    }
}

static void test_ring_len_counts_queued_tasks(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    unsigned stolen;
    push_range(f, r, 0, CAP); /* checks len after each push */
    assert_int_equal(weft__ring_len(r), CAP);
    assert_non_null(weft__ring_pop_owner(r));
    assert_int_equal(weft__ring_len(r), CAP - 1);
    /* A steal takes ceil((CAP-1)/2) = HALF from the victim and leaves all
     * but the returned one in the thief's ring. */
    assert_non_null(weft__ring_steal_into(r, &f->q->dst, &stolen));
    assert_int_equal(stolen, HALF);
    assert_int_equal(weft__ring_len(r), CAP - 1 - HALF);
    assert_int_equal(weft__ring_len(&f->q->dst), HALF - 1);
    assert_int_equal(weft__ring_is_empty(&f->q->dst), HALF == 1);
}

/* Push/pop cycles over a pool of more tasks than fit, so that no task is
 * reused while queued: each pop must return the next task in push order. */
#define POOL (2 * CAP + 1)

typedef struct cycle {
    size_t next_push, next_pop;
} cycle;

/* Pushes the next task of the cycle, with no overflow. */
static void cycle_push(struct fixture *f, weft__ring *r, cycle *c)
{
    assert_false(push_or_spill(r, &f->tasks[c->next_push % POOL], &f->q->inj));
    c->next_push++;
}

/* Pops up to `n` tasks (no more than are queued), each the next in push
 * order. */
static void cycle_pop(struct fixture *f, weft__ring *r, cycle *c, size_t n)
{
    for (size_t i = 0; i < n && c->next_pop < c->next_push; i++) {
        struct weft__task *t = weft__ring_pop_owner(r);
        assert_int_equal(index_of(f, t), c->next_pop % POOL);
        c->next_pop++;
    }
}

/* Push/pop cycles of varying depth run the indices around the ring many
 * times (well past 2^16 operations, where a 16-bit index would wrap); each
 * pop must return the next task in push order. */
static void test_ring_wraps_around_many_times_capacity(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    cycle c = { 0, 0 };
    uint64_t rng = rng_seed(12345);
    while (c.next_push < 300000) {
        uint32_t x = rng_next32(&rng);
        unsigned depth = 1 + (x >> 16) % CAP;
        while (c.next_push - c.next_pop < depth)
            cycle_push(f, r, &c);
        assert_int_equal(weft__ring_len(r), c.next_push - c.next_pop);
        cycle_pop(f, r, &c, 1 + (x >> 8) % depth); /* never more than `depth` */
    }
    cycle_pop(f, r, &c, SIZE_MAX);
    assert_null(weft__ring_pop_owner(r));
    expect_injector_empty(f);
}

/* The same cycles straddling the u32 index wrap: both halves of the packed
 * head and the tail cross 2^32 while tasks are queued. Afterwards the ring
 * must still look idle to thieves (no phantom steal in flight) and still
 * overflow by half. */
static void test_ring_survives_u32_index_wrap(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    ring_reset_at(r, UINT32_MAX - 3 * CAP);
    cycle c = { 0, 0 };
    while (c.next_push < 8 * CAP) {
        while (c.next_push - c.next_pop < CAP) {
            cycle_push(f, r, &c);
            assert_int_equal(weft__ring_len(r), c.next_push - c.next_pop);
        }
        cycle_pop(f, r, &c, HALF + 1);
    }
    cycle_pop(f, r, &c, SIZE_MAX);
    assert_null(weft__ring_pop_owner(r));
    expect_injector_empty(f);

    push_range(f, r, 0, CAP);
    unsigned stolen = 0;
    struct weft__task *t = weft__ring_steal_into(r, &f->q->dst, &stolen);
    assert_int_equal(stolen, HALF);
    assert_true(index_of(f, t) < HALF);
    push_range(f, r, CAP, HALF);
    assert_true(push_or_spill(r, &f->tasks[CAP + HALF], &f->q->inj));
    for (size_t i = 0; i < HALF; i++)
        assert_int_equal(index_of(f, inj_pop(&f->q->inj)), HALF + i);
    assert_int_equal(index_of(f, inj_pop(&f->q->inj)), CAP + HALF);
    expect_injector_empty(f);
    expect_pops(f, r, CAP, HALF);
}

/* ---- overflow ------------------------------------------------------------ */

static void test_ring_push_when_full_moves_half_and_new_task_to_injector(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        push_range(f, &f->q->src, 0, CAP);
        expect_injector_empty(f);

        /* One push past capacity: reported as an overflow. */
        assert_true(push_or_spill(&f->q->src, &f->tasks[CAP], &f->q->inj));

        /* The injector got the oldest half, in order, then the new task. */
        for (size_t i = 0; i < HALF; i++)
            assert_int_equal(index_of(f, inj_pop(&f->q->inj)), i);
        assert_int_equal(index_of(f, inj_pop(&f->q->inj)), CAP);
        expect_injector_empty(f);

        /* The ring kept the newest half. */
        assert_int_equal(weft__ring_len(&f->q->src), CAP - HALF);
        expect_pops(f, &f->q->src, HALF, CAP - HALF);
    }
}

static void test_ring_overflow_repeats_each_time_ring_fills(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        push_range(f, &f->q->src, 0, CAP);
        assert_true(push_or_spill(&f->q->src, &f->tasks[CAP], &f->q->inj));
        /* The overflow freed exactly HALF slots... */
        push_range(f, &f->q->src, CAP + 1, HALF);
        assert_int_equal(weft__ring_len(&f->q->src), CAP);
        /* ...and the next push overflows again with the ring's oldest half. */
        assert_true(push_or_spill(&f->q->src, &f->tasks[CAP + 1 + HALF], &f->q->inj));

        size_t want[2 * HALF + 2], n = 0;
        for (size_t i = 0; i < HALF; i++)
            want[n++] = i;          /* first overflow: tasks 0 .. HALF-1 */
        want[n++] = CAP;            /* and the task that overflowed */
        for (size_t i = HALF; i < CAP; i++)
            want[n++] = i;          /* second: the rest of the first fill */
        want[n++] = CAP + 1 + HALF;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(index_of(f, inj_pop(&f->q->inj)), want[i]);
        expect_injector_empty(f);
        expect_pops(f, &f->q->src, CAP + 1, HALF);
    }
}

/* While a thief is copying a claimed range the owner cannot move half of
 * the ring, so only the new task goes to the injector. The in-flight claim
 * is set up by hand (head = steal | real with steal < real, as ring.h
 * documents); the concurrent test below reaches it only by chance. */
static void test_ring_push_during_steal_sends_only_new_task_to_injector(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    for (size_t s = 0; s < NSTARTS; s++) {
        uint32_t base = starts[s];
        ring_reset_at(r, base);
        push_range(f, r, 0, CAP);
        /* A thief claimed [base, base + HALF) and is still copying it. */
        atomic_store(&r->head, ((uint64_t)base << 32) | (uint32_t)(base + HALF));
        assert_int_equal(weft__ring_len(r), CAP - HALF);

        assert_true(push_or_spill(r, &f->tasks[CAP], &f->q->inj));
        assert_int_equal(index_of(f, inj_pop(&f->q->inj)), CAP);
        expect_injector_empty(f);
        assert_int_equal(weft__ring_len(r), CAP - HALF);

        /* Another thief backs off while the claim is open. */
        unsigned stolen = 99;
        assert_null(weft__ring_steal_into(r, &f->q->dst, &stolen));
        assert_int_equal(stolen, 0);

        /* The owner pops past the claim and leaves the claim's start. */
        struct weft__task *t = weft__ring_pop_owner(r);
        assert_int_equal(index_of(f, t), HALF);
        assert_int_equal((uint32_t)(atomic_load(&r->head) >> 32), base);

        /* The thief finishes: the claimed slots become free again. */
        uint32_t real = (uint32_t)atomic_load(&r->head);
        atomic_store(&r->head, ((uint64_t)real << 32) | real);
        push_range(f, r, CAP + 1, HALF + 1);
        assert_int_equal(weft__ring_len(r), CAP);
        expect_injector_empty(f);
        pop_seq(f, r, HALF + 1, CAP - HALF - 1);
        expect_pops(f, r, CAP + 1, HALF + 1);
    }
}

/* ---- push at the front ------------------------------------------------------ */

/* A task pushed at the front is popped next, before everything queued
 * behind it, which keeps its order; at every start position (the u32
 * wrap included), into an empty ring, and until the ring is full. */
static void test_ring_push_front_is_popped_next(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(r, starts[s]);
        assert_true(weft__ring_push_front_owner(r, &f->tasks[CAP]));
        assert_int_equal(weft__ring_len(r), 1);
        expect_pops(f, r, CAP, 1);

        ring_reset_at(r, starts[s]);
        push_range(f, r, 0, CAP - 2);
        assert_true(weft__ring_push_front_owner(r, &f->tasks[CAP + 1]));
        assert_true(weft__ring_push_front_owner(r, &f->tasks[CAP]));
        assert_int_equal(weft__ring_len(r), CAP);
        /* Full: refused, and nothing moved. */
        assert_false(weft__ring_push_front_owner(r, &f->tasks[CAP + 2]));
        assert_int_equal(weft__ring_len(r), CAP);
        pop_seq(f, r, CAP, 2);
        expect_pops(f, r, 0, CAP - 2);
        expect_injector_empty(f);
    }
}

/* While a thief copies a claimed range, the slot before the head may be
 * one it reads: the push is refused and the ring left as it was. */
static void test_ring_push_front_refused_while_a_thief_copies(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    for (size_t s = 0; s < NSTARTS; s++) {
        uint32_t base = starts[s];
        ring_reset_at(r, base);
        push_range(f, r, 0, 4);
        atomic_store(&r->head, ((uint64_t)base << 32) | (uint32_t)(base + 2));
        assert_false(weft__ring_push_front_owner(r, &f->tasks[CAP]));
        assert_int_equal(atomic_load(&r->head), ((uint64_t)base << 32) | (uint32_t)(base + 2));
        /* The thief finishes; now it goes in. */
        atomic_store(&r->head, ((uint64_t)(base + 2) << 32) | (uint32_t)(base + 2));
        assert_true(weft__ring_push_front_owner(r, &f->tasks[CAP]));
        pop_seq(f, r, CAP, 1);
        expect_pops(f, r, 2, 2);
    }
}

/* A thief after a push at the front takes the oldest half, the pushed
 * task first. */
static void test_ring_steal_after_push_front_takes_it_first(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        ring_reset_at(&f->q->dst, starts[s]);
        push_range(f, &f->q->src, 0, 3);
        assert_true(weft__ring_push_front_owner(&f->q->src, &f->tasks[CAP]));
        unsigned stolen = 0;
        struct weft__task *t = weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen);
        assert_int_equal(stolen, 2);
        /* The thief runs the last one it took and queues the rest. */
        assert_int_equal(index_of(f, t), 0);
        expect_pops(f, &f->q->dst, CAP, 1);
        expect_pops(f, &f->q->src, 1, 2);
    }
}

/* Pushes at the front keep going first only for so long: once
 * WEFT_RING_BACK_WAIT_MAX pops in a row came from the front while a task
 * waited at the back, the front is refused until that task was popped;
 * with nothing at the back, there is no limit. */
static void test_ring_push_front_never_starves_the_back(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(r, starts[s]);
        /* Nothing at the back: any number of front pushes and pops. */
        for (unsigned i = 0; i < 2 * WEFT_RING_BACK_WAIT_MAX; i++) {
            assert_true(weft__ring_push_front_owner(r, &f->tasks[1]));
            expect_pops(f, r, 1, 1);
        }
        /* One task at the back; a task at the front, popped and pushed
         * again, as a depth-first tree would, until refused. */
        push_range(f, r, 0, 1);
        unsigned pops = 0;
        while (weft__ring_push_front_owner(r, &f->tasks[1])) {
            pop_seq(f, r, 1, 1);
            pops++;
            assert_true(pops <= WEFT_RING_BACK_WAIT_MAX);
        }
        assert_int_equal(pops, WEFT_RING_BACK_WAIT_MAX);
        /* The back task runs next; then the front is open again. */
        expect_pops(f, r, 0, 1);
        assert_true(weft__ring_push_front_owner(r, &f->tasks[1]));
        expect_pops(f, r, 1, 1);
    }
}

/* A task at the bottom of the front run, under a stack that keeps being
 * pushed and popped on top of it (a depth-first tree), is popped within
 * WEFT_RING_FRONT_AGE_MAX pops of the run's start plus what was queued
 * then: after that the ring serves everything queued before pushing at
 * the front again. */
static void test_ring_front_run_is_served_within_its_age_bound(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(r, starts[s]);
        assert_true(weft__ring_push_front_owner(r, &f->tasks[0])); /* the buried one */
        assert_true(weft__ring_push_front_owner(r, &f->tasks[1]));
        unsigned pops = 0;
        for (;;) {
            struct weft__task *t = weft__ring_pop_owner(r);
            assert_non_null(t);
            pops++;
            if (t == &f->tasks[0])
                break;
            assert_true(pops <= WEFT_RING_FRONT_AGE_MAX + 2u);
            /* The tree goes on: what ran pushes a child at the front (or,
             * refused, at the back). */
            if (!weft__ring_push_front_owner(r, t))
                assert_false(push_or_spill(r, t, &f->q->inj));
        }
        assert_int_equal(pops, WEFT_RING_FRONT_AGE_MAX + 1u);
        /* Served: the front is open again. */
        expect_pops(f, r, 1, 1);
        assert_true(weft__ring_push_front_owner(r, &f->tasks[2]));
        expect_pops(f, r, 2, 1);
    }
}

/* ---- steal ---------------------------------------------------------------- */

/* Victim holds n tasks; an empty thief takes min(ceil(n/2), CAP/2), the
 * oldest ones. One is returned to run, the rest sit in the thief's ring in
 * their original order, and the victim keeps the newer ones in order. */
static void test_ring_steal_takes_half_rounded_up(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        for (unsigned n = 1; n <= CAP; n++) {
            ring_reset_at(&f->q->src, starts[s]);
            ring_reset_at(&f->q->dst, starts[(s + 3) % NSTARTS]);
            push_range(f, &f->q->src, 0, n);

            unsigned stolen = 0;
            unsigned want = n - n / 2;
            if (want > HALF)
                want = HALF;
            struct weft__task *t = weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen);
            assert_int_equal(stolen, want);
            size_t ret = index_of(f, t);
            assert_true(ret < want);
            assert_int_equal(weft__ring_len(&f->q->dst), want - 1);
            assert_int_equal(weft__ring_len(&f->q->src), n - want);

            /* The thief's ring: the stolen tasks except `ret`, in order. */
            for (size_t i = 0; i < want; i++) {
                if (i == ret)
                    continue;
                assert_int_equal(index_of(f, weft__ring_pop_owner(&f->q->dst)), i);
            }
            assert_null(weft__ring_pop_owner(&f->q->dst));
            expect_pops(f, &f->q->src, want, n - want);
            expect_injector_empty(f);
        }
    }
}

static void test_ring_steal_refuses_when_thief_ring_more_than_half_full(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        for (unsigned have = HALF + 1; have <= CAP; have++) {
            ring_reset_at(&f->q->src, starts[s]);
            ring_reset_at(&f->q->dst, starts[(s + 1) % NSTARTS]);
            push_range(f, &f->q->src, 0, CAP);
            push_range(f, &f->q->dst, CAP, have);

            unsigned stolen = 77;
            assert_null(weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen));
            assert_int_equal(stolen, 0);
            /* Both rings untouched. */
            expect_pops(f, &f->q->src, 0, CAP);
            expect_pops(f, &f->q->dst, CAP, have);
        }
    }
}

/* Half full is still room enough: the stolen tasks queue behind the
 * thief's own, and the thief's ring ends one short of full. */
static void test_ring_steal_into_half_full_ring_appends_after_own_tasks(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        ring_reset_at(&f->q->dst, starts[(s + 2) % NSTARTS]);
        push_range(f, &f->q->src, 0, CAP);
        push_range(f, &f->q->dst, CAP, HALF);

        unsigned stolen = 0;
        struct weft__task *t = weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen);
        assert_int_equal(stolen, HALF);
        size_t ret = index_of(f, t);
        assert_true(ret < HALF);
        assert_int_equal(weft__ring_len(&f->q->dst), HALF + HALF - 1);

        /* Room for exactly one more without overflow. */
        push_range(f, &f->q->dst, 2 * CAP, 1);
        assert_int_equal(weft__ring_len(&f->q->dst), CAP);

        for (size_t i = 0; i < HALF; i++)
            assert_int_equal(index_of(f, weft__ring_pop_owner(&f->q->dst)), CAP + i);
        for (size_t i = 0; i < HALF; i++) {
            if (i == ret)
                continue;
            assert_int_equal(index_of(f, weft__ring_pop_owner(&f->q->dst)), i);
        }
        expect_pops(f, &f->q->dst, 2 * CAP, 1);
        expect_pops(f, &f->q->src, HALF, CAP - HALF);
        expect_injector_empty(f);
    }
}

/* A finished steal hands its slots back: the victim can refill them
 * without overflowing. */
static void test_ring_steal_frees_room_for_owner_pushes(void **state)
{
    struct fixture *f = *state;
    for (size_t s = 0; s < NSTARTS; s++) {
        ring_reset_at(&f->q->src, starts[s]);
        ring_reset_at(&f->q->dst, 0);
        push_range(f, &f->q->src, 0, CAP);
        unsigned stolen = 0;
        assert_non_null(weft__ring_steal_into(&f->q->src, &f->q->dst, &stolen));
        assert_int_equal(stolen, HALF);
        push_range(f, &f->q->src, CAP, HALF);
        assert_int_equal(weft__ring_len(&f->q->src), CAP);
        expect_injector_empty(f);
        expect_pops(f, &f->q->src, HALF, CAP);
    }
}

/* ---- concurrency ---------------------------------------------------------- */

/* One owner pushes (overflowing to a real injector) and pops; three thieves
 * steal into their own rings from the owner and from each other, and drain
 * their rings and the injector. Every task must be seen exactly once. The
 * run is split into rounds that reuse the tasks; the rings persist, so their
 * indices keep advancing, and each round ends in a drain race. */

#define THIEVES 3

#ifdef WEFT_TEST_SANITIZED
#define CONC_ROUNDS 10u
#else
#define CONC_ROUNDS 31u /* 2,031,616 tasks */
#endif
#define CONC_ROUND_TASKS 65536u
#define RELAY_ROUNDS 4u

struct conc_rings {
    weft__ring owner;
    weft__ring thief[THIEVES];
    weft__injector inj;
};

struct conc {
    struct conc_rings *q;
    struct weft__task *tasks;
    size_t ntasks;
    int32_t round;              /* written between rounds only */
    unsigned nthreads;          /* threads in a round */
    _Atomic uint32_t *seen;     /* per task, this round */
    _Atomic bool producer_done; /* the owner has pushed every task */
    _Atomic bool relay_done;    /* relay test: the relay has stopped */
    _Atomic unsigned long duplicates, foreign, stale, bad_steals;
    /* Threads check in and wait for each other, so the round runs with
     * everyone live rather than the owner racing ahead alone. */
    _Atomic unsigned ready;
};

static void conc_init(struct conc *c, unsigned nthreads)
{
    memset(c, 0, sizeof *c);
    c->q = aligned_zalloc(sizeof *c->q);
    weft__ring_init(&c->q->owner);
    for (unsigned i = 0; i < THIEVES; i++)
        weft__ring_init(&c->q->thief[i]);
    weft__injector_init(&c->q->inj);
    c->nthreads = nthreads;
    c->ntasks = CONC_ROUND_TASKS;
    c->tasks = tasks_new(c->ntasks);
    c->seen = calloc(c->ntasks, sizeof *c->seen);
    assert_non_null(c->seen);
}

static void conc_fini(struct conc *c)
{
    weft__injector_fini(&c->q->inj);
    free(c->q);
    free(c->tasks);
    free(c->seen);
}

static void conc_round_begin(struct conc *c, uint32_t round)
{
    c->round = (int32_t)round + 1;
    atomic_store(&c->producer_done, false);
    atomic_store(&c->relay_done, false);
    atomic_store(&c->ready, 0);
    for (size_t i = 0; i < c->ntasks; i++)
        atomic_store_explicit(&c->seen[i], 0, memory_order_relaxed);
}

/* After the round's threads are joined: each task seen exactly once, with
 * the payload of this round, and every queue empty. */
static void conc_round_check(struct conc *c)
{
    assert_int_equal(atomic_load(&c->foreign), 0);
    assert_int_equal(atomic_load(&c->duplicates), 0);
    assert_int_equal(atomic_load(&c->stale), 0);
    assert_int_equal(atomic_load(&c->bad_steals), 0);
    size_t missing = 0;
    for (size_t i = 0; i < c->ntasks; i++)
        missing += atomic_load_explicit(&c->seen[i], memory_order_relaxed) == 0;
    assert_int_equal(missing, 0);
    assert_true(weft__ring_is_empty(&c->q->owner));
    for (unsigned i = 0; i < THIEVES; i++)
        assert_true(weft__ring_is_empty(&c->q->thief[i]));
    assert_true(weft__injector_is_empty(&c->q->inj));
}

static void conc_start_gate(struct conc *c)
{
    atomic_fetch_add(&c->ready, 1);
    while (atomic_load(&c->ready) < c->nthreads)
        sched_yield();
}

/* What a round's thread gets: the shared state and its place among the
 * round's threads (thread 0 is the owner). */
struct conc_thread {
    struct conc *c;
    unsigned id;
};

static void conc_see(struct conc *c, struct weft__task *t)
{
    if (t < c->tasks || t >= c->tasks + c->ntasks) {
        atomic_fetch_add(&c->foreign, 1);
        return;
    }
    /* The owner wrote the round into the task before queueing it: every
     * queue path must publish that write (TSan checks the hand-off). */
    if (t->out_size != (uint32_t)c->round)
        atomic_fetch_add(&c->stale, 1);
    if (atomic_fetch_add_explicit(&c->seen[t - c->tasks], 1, memory_order_relaxed) != 0)
        atomic_fetch_add(&c->duplicates, 1);
}

/* Pops and sees every task in the ring `own` of the calling thread;
 * returns whether there was any. */
static bool conc_drain(struct conc *c, weft__ring *own)
{
    bool found = false;
    struct weft__task *t;
    while ((t = weft__ring_pop_owner(own)) != NULL) {
        conc_see(c, t);
        found = true;
    }
    return found;
}

static void *conc_owner(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *r = &c->q->owner;
    uint64_t rng = rng_seed((uint64_t)c->round);
    size_t next = 0;
    conc_start_gate(c);
    while (next < c->ntasks) {
        uint64_t x = rng_next(&rng);
        /* Mostly push, sometimes a burst past capacity, sometimes pop, and
         * now and then take from the injector as a worker does. */
        size_t burst = (x & 63) == 0 ? CAP + HALF + (size_t)((x >> 8) % CAP) : 1;
        for (size_t i = 0; i < burst && next < c->ntasks; i++, next++) {
            c->tasks[next].out_size = (uint32_t)c->round;
            /* Now and then at the front, racing the thieves' claims
             * (it fails while one copies or when full: then the back). */
            if ((x >> 28) % 8 == 0 && weft__ring_push_front_owner(r, &c->tasks[next]))
                continue;
            push_or_spill(r, &c->tasks[next], &c->q->inj);
        }
        if ((x >> 20) % 4 == 0) {
            struct weft__task *t = weft__ring_pop_owner(r);
            if (t)
                conc_see(c, t);
        }
        if ((x >> 24) % 61 == 0) {
            struct weft__task *buf[4];
            unsigned n = inj_pop_batch(&c->q->inj, buf, 4);
            for (unsigned i = 0; i < n; i++)
                conc_see(c, buf[i]);
        }
    }
    /* Release: the thieves' final check that the injector is empty must
     * see every overflow enqueued above (pairs with their acquire load). */
    atomic_store_explicit(&c->producer_done, true, memory_order_release);
    conc_drain(c, r);
    return NULL;
}

static void *conc_thief(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    unsigned me = ((struct conc_thread *)arg)->id - 1; /* thread 0 is the owner */
    weft__ring *own = &c->q->thief[me];
    uint64_t rng = rng_seed((uint64_t)c->round << 8 | (me + 1));
    conc_start_gate(c);
    for (;;) {
        /* Read before the pass: if the owner was done then, a pass that
         * finds nothing proves the shared queues are drained for good. */
        bool done = atomic_load_explicit(&c->producer_done, memory_order_acquire);
        bool found = conc_drain(c, own);
        struct weft__task *buf[8];
        unsigned n = inj_pop_batch(&c->q->inj, buf, 8);
        for (unsigned i = 0; i < n; i++)
            conc_see(c, buf[i]);
        found |= n > 0;

        uint64_t x = rng_next(&rng);
        weft__ring *victim = &c->q->owner;
        if (x % 4 >= 2) /* half the time, another thief */
            victim = &c->q->thief[(me + 1 + (x >> 8) % (THIEVES - 1)) % THIEVES];
        unsigned stolen = 0;
        struct weft__task *t = weft__ring_steal_into(victim, own, &stolen);
        if (t) {
            conc_see(c, t);
            found = true;
            /* Our ring was empty before the steal; only we add to it. */
            if (stolen < 1 || stolen > HALF || weft__ring_len(own) > stolen - 1)
                atomic_fetch_add(&c->bad_steals, 1);
        } else if (stolen != 0) {
            atomic_fetch_add(&c->bad_steals, 1);
        }

        if (!found) {
            /* Our ring is empty and stays so (only we fill it); the owner
             * drains its own; the injector gets nothing after `done`. */
            if (done && weft__injector_is_empty(&c->q->inj) && weft__ring_is_empty(own))
                break;
            sched_yield();
        }
    }
    return NULL;
}

/* Runs `rounds` rounds, each of `nthreads` threads, thread i running
 * `fn[i]`, and checks each round (conc_round_check). */
static void conc_run(uint32_t rounds, unsigned nthreads, void *(*const *fn)(void *))
{
    struct conc c;
    conc_init(&c, nthreads);
    pthread_t th[1 + THIEVES];
    struct conc_thread arg[1 + THIEVES];
    assert_true(nthreads <= 1 + THIEVES);
    for (uint32_t round = 0; round < rounds; round++) {
        conc_round_begin(&c, round);
        for (unsigned i = 0; i < nthreads; i++) {
            arg[i] = (struct conc_thread){ &c, i };
            assert_int_equal(pthread_create(&th[i], NULL, fn[i], &arg[i]), 0);
        }
        for (unsigned i = 0; i < nthreads; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        conc_round_check(&c);
    }
    conc_fini(&c);
}

static void test_ring_concurrent_steals_see_each_task_exactly_once(void **state)
{
    (void)state;
    void *(*const fn[])(void *) = { conc_owner, conc_thief, conc_thief, conc_thief };
    static_assert(sizeof fn / sizeof fn[0] == 1 + THIEVES, "an owner and the thieves");
    conc_run(CONC_ROUNDS, 1 + THIEVES, fn);
}

/* A relay: the owner fills its ring A; a relay thread only steals from A
 * into its ring B; a sink thread only steals from B into its ring C and
 * drains C. The sink never touches A, so it learns of the owner's writes
 * to a task only through the relay's steal publishing B: a steal must
 * publish what it copies as the owner's push does. (The payload check is
 * what ThreadSanitizer watches; without it this is an exactly-once test.) */
static void *relay_owner(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *a = &c->q->owner;
    conc_start_gate(c);
    for (size_t next = 0; next < c->ntasks;) {
        /* Keep overflow rare (only a push racing a steal's copy still
         * goes to the injector, which the relay drains). */
        if (weft__ring_len(a) == CAP) {
            sched_yield();
            continue;
        }
        c->tasks[next].out_size = (uint32_t)c->round;
        push_or_spill(a, &c->tasks[next], &c->q->inj);
        next++;
    }
    /* Release: pairs with the relay's acquire load. */
    atomic_store_explicit(&c->producer_done, true, memory_order_release);
    return NULL;
}

static void *relay_middle(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *a = &c->q->owner, *b = &c->q->thief[0];
    conc_start_gate(c);
    for (;;) {
        bool done = atomic_load_explicit(&c->producer_done, memory_order_acquire);
        unsigned stolen;
        struct weft__task *t = weft__ring_steal_into(a, b, &stolen);
        if (t) {
            conc_see(c, t);
            continue;
        }
        if ((t = inj_pop(&c->q->inj)) != NULL) {
            conc_see(c, t);
            continue;
        }
        /* Only we take from A and the injector: empty after `done` means
         * finished. */
        if (done && weft__ring_is_empty(a) && weft__injector_is_empty(&c->q->inj))
            break;
        sched_yield();
    }
    /* Release: pairs with the sink's acquire load. */
    atomic_store_explicit(&c->relay_done, true, memory_order_release);
    return NULL;
}

static void *relay_sink(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *b = &c->q->thief[0], *own = &c->q->thief[1];
    conc_start_gate(c);
    for (;;) {
        bool done = atomic_load_explicit(&c->relay_done, memory_order_acquire);
        bool found = conc_drain(c, own);
        unsigned stolen;
        struct weft__task *t = weft__ring_steal_into(b, own, &stolen);
        if (t) {
            conc_see(c, t);
            found = true;
        }
        if (!found) {
            /* Only we take from B, and the relay stopped filling it. */
            if (done && weft__ring_is_empty(b))
                break;
            sched_yield();
        }
    }
    return NULL;
}

static void test_ring_steal_publishes_tasks_to_thieves_of_the_thief(void **state)
{
    (void)state;
    void *(*const fn[])(void *) = { relay_owner, relay_middle, relay_sink };
    conc_run(RELAY_ROUNDS, 3, fn);
}

/* ---- the LIFO slot ---------------------------------------------------------- */

static void test_ring_lifo_slot_holds_the_last_put_and_hands_back_the_one_before(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    assert_null(weft__ring_lifo_take(r));
    assert_null(weft__ring_lifo_put(r, &f->tasks[0]));
    assert_true(weft__ring_lifo_full(r));
    assert_ptr_equal(weft__ring_lifo_put(r, &f->tasks[1]), &f->tasks[0]);
    assert_ptr_equal(weft__ring_lifo_peek(r), &f->tasks[1]);
    assert_ptr_equal(weft__ring_lifo_take(r), &f->tasks[1]);
    assert_false(weft__ring_lifo_full(r));
    assert_null(weft__ring_lifo_take(r));
    assert_null(weft__ring_lifo_peek(r));
    assert_true(weft__ring_is_empty(r)); /* the slot is not part of the ring */
}

static void test_ring_lifo_thief_takes_only_the_task_it_saw(void **state)
{
    struct fixture *f = *state;
    weft__ring *r = &f->q->src;
    assert_null(weft__ring_lifo_put(r, &f->tasks[0]));
    assert_false(weft__ring_lifo_steal(r, &f->tasks[1])); /* not there */
    assert_true(weft__ring_lifo_steal(r, &f->tasks[0]));
    assert_false(weft__ring_lifo_steal(r, &f->tasks[0])); /* gone */
    assert_null(weft__ring_lifo_peek(r));
    /* The owner learns it was taken: its take finds nothing, and its next
     * put hands back nothing to queue. */
    assert_true(weft__ring_lifo_full(r));
    assert_null(weft__ring_lifo_take(r));
    assert_null(weft__ring_lifo_put(r, &f->tasks[2]));
    assert_true(weft__ring_lifo_steal(r, &f->tasks[2]));
    assert_null(weft__ring_lifo_put(r, &f->tasks[3]));
    assert_ptr_equal(weft__ring_lifo_take(r), &f->tasks[3]);
}

/* The owner puts every task in its LIFO slot once, taking one back now and
 * then, as a worker does; thieves take whatever they see there. Each task
 * must come out exactly once — through a later put, a take or a steal —
 * with the payload the owner wrote before putting it. */
static void *lifo_owner(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *r = &c->q->owner;
    uint64_t rng = rng_seed((uint64_t)c->round ^ 0x11f0);
    conc_start_gate(c);
    for (size_t i = 0; i < c->ntasks; i++) {
        uint64_t x = rng_next(&rng);
        c->tasks[i].out_size = (uint32_t)c->round;
        struct weft__task *t = weft__ring_lifo_put(r, &c->tasks[i]);
        if (t)
            conc_see(c, t);
        if (x % 4 == 0 && (t = weft__ring_lifo_take(r)) != NULL)
            conc_see(c, t);
        if ((x >> 8) % 16 == 0)
            sched_yield(); /* leave the occupant to the thieves a while */
    }
    struct weft__task *t = weft__ring_lifo_take(r);
    if (t)
        conc_see(c, t);
    /* Release: pairs with the thieves' acquire load. */
    atomic_store_explicit(&c->producer_done, true, memory_order_release);
    return NULL;
}

static void *lifo_thief(void *arg)
{
    struct conc *c = ((struct conc_thread *)arg)->c;
    weft__ring *r = &c->q->owner;
    conc_start_gate(c);
    for (;;) {
        bool done = atomic_load_explicit(&c->producer_done, memory_order_acquire);
        struct weft__task *t = weft__ring_lifo_peek(r);
        if (t && weft__ring_lifo_steal(r, t)) {
            conc_see(c, t);
            continue;
        }
        if (done && !weft__ring_lifo_peek(r))
            break; /* the owner emptied the slot and puts nothing more */
        sched_yield();
    }
    return NULL;
}

static void test_ring_lifo_concurrent_thieves_and_owner_see_each_task_once(void **state)
{
    (void)state;
    void *(*const fn[])(void *) = { lifo_owner, lifo_thief, lifo_thief, lifo_thief };
    static_assert(sizeof fn / sizeof fn[0] == 1 + THIEVES, "an owner and the thieves");
    conc_run(CONC_ROUNDS, 1 + THIEVES, fn);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ring_new_ring_is_empty),
        T(test_ring_pop_returns_fifo_order),
        T(test_ring_pop_interleaved_with_push_keeps_fifo_order),
        T(test_ring_len_counts_queued_tasks),
        T(test_ring_wraps_around_many_times_capacity),
        T(test_ring_survives_u32_index_wrap),
        T(test_ring_push_when_full_moves_half_and_new_task_to_injector),
        T(test_ring_overflow_repeats_each_time_ring_fills),
        T(test_ring_push_during_steal_sends_only_new_task_to_injector),
        T(test_ring_push_front_is_popped_next),
        T(test_ring_push_front_refused_while_a_thief_copies),
        T(test_ring_steal_after_push_front_takes_it_first),
        T(test_ring_push_front_never_starves_the_back),
        T(test_ring_front_run_is_served_within_its_age_bound),
        T(test_ring_steal_takes_half_rounded_up),
        T(test_ring_steal_refuses_when_thief_ring_more_than_half_full),
        T(test_ring_steal_into_half_full_ring_appends_after_own_tasks),
        T(test_ring_steal_frees_room_for_owner_pushes),
        cmocka_unit_test(test_ring_concurrent_steals_see_each_task_exactly_once),
        cmocka_unit_test(test_ring_steal_publishes_tasks_to_thieves_of_the_thief),
        T(test_ring_lifo_slot_holds_the_last_put_and_hands_back_the_one_before),
        T(test_ring_lifo_thief_takes_only_the_task_it_saw),
        cmocka_unit_test(test_ring_lifo_concurrent_thieves_and_owner_see_each_task_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
