/* weft-floor: what this machine allows, without any runtime (BENCH.md,
 * "Floors"). Plain C11 + pthreads; nothing from weft is linked.
 *
 *   ring: 10,000,000 u64 through a 1,024-slot lock-free single-producer
 *         single-consumer ring between two busy (spinning) threads, pinned
 *         to two different CPUs when the affinity mask has two.
 *         - batched: the producer publishes its tail every 32 items, the
 *           consumer drains everything published and then publishes its head
 *           once for the batch it drained;
 *         - per item: both publish after every item (a Lamport queue).
 *   spawn: one thread allocates 1,000,000 80-byte task blocks, sets each
 *         block's state word and queues it (an intrusive FIFO), then
 *         dequeues each one, runs it (an indirect call) and frees it.
 *
 * Each figure is the median of 5 runs inside this process. Output, one
 * key=value per line:
 *   ring_cpus=<a>,<b> | unpinned
 *   ring_batched_ms=<float>
 *   ring_per_item_ms=<float>
 *   spawn_ms=<float>
 *   spawn_ns_per_task=<float>
 *   check=<sum>      (every value consumed and every task's argument, all
 *                     runs; a wrong sum exits 1)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 5
#define RING_ITEMS 10000000ULL
#define RING_SLOTS 1024u
#define RING_MASK (RING_SLOTS - 1u)
#define RING_BATCH 32u
#define SPAWN_TASKS 1000000ULL
#define CACHE_LINE 64

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* With a single CPU a spinning thread would hold it until preempted while
 * the other side waits for it: spin by yielding instead. */
static int single_cpu;

static inline void cpu_relax(void)
{
    if (single_cpu) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------------ ring */

/* Producer and consumer indices on their own cache lines; each side keeps a
 * private copy of the other's index and rereads the shared one only when its
 * copy says the ring is full (producer) or empty (consumer). */
struct ring {
    alignas(CACHE_LINE) _Atomic uint64_t tail; /* written by the producer */
    alignas(CACHE_LINE) _Atomic uint64_t head; /* written by the consumer */
    alignas(CACHE_LINE) _Atomic int go;        /* start line */
    _Atomic int ready;
    _Atomic int pin_failed;
    int batched;
    int cpu[2]; /* -1: not pinned */
    double t_start, t_end;
    uint64_t sum;
    alignas(CACHE_LINE) uint64_t slot[RING_SLOTS];
};

static void pin_self(struct ring *r, int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        atomic_store_explicit(&r->pin_failed, 1, memory_order_relaxed);
}

static void wait_for_start(struct ring *r)
{
    atomic_fetch_add_explicit(&r->ready, 1, memory_order_relaxed);
    /* acquire: pairs with main's release store of go, after which the
     * ring's fields are initialised. */
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        cpu_relax();
}

static void *ring_producer(void *arg)
{
    struct ring *r = arg;
    pin_self(r, r->cpu[0]);
    wait_for_start(r);
    r->t_start = now_ms();
    uint64_t tail = 0, head_seen = 0, published = 0;
    const uint64_t every = r->batched ? RING_BATCH : 1;
    for (uint64_t v = 0; v < RING_ITEMS; v++) {
        while (tail - head_seen == RING_SLOTS) {
            /* Full as far as we know: publish what is pending (the consumer
             * may be waiting for exactly that), then look at its head. */
            if (published != tail) {
                atomic_store_explicit(&r->tail, tail, memory_order_release);
                published = tail;
            }
            /* acquire: pairs with the consumer's release store of head, so
             * the slots it frees are no longer being read. */
            head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (tail - head_seen == RING_SLOTS)
                cpu_relax();
        }
        r->slot[tail & RING_MASK] = v;
        tail++;
        if (tail - published >= every) {
            /* release: pairs with the consumer's acquire load of tail, so
             * the slots written before it are visible. */
            atomic_store_explicit(&r->tail, tail, memory_order_release);
            published = tail;
        }
    }
    if (published != tail)
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    return NULL;
}

static void *ring_consumer(void *arg)
{
    struct ring *r = arg;
    pin_self(r, r->cpu[1]);
    wait_for_start(r);
    uint64_t head = 0, sum = 0;
    if (r->batched) {
        while (head < RING_ITEMS) {
            /* acquire: pairs with the producer's release store of tail. */
            uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (tail == head) {
                cpu_relax();
                continue;
            }
            for (; head != tail; head++)
                sum += r->slot[head & RING_MASK];
            /* release: pairs with the producer's acquire load of head; the
             * reads of the drained slots happen before it. */
            atomic_store_explicit(&r->head, head, memory_order_release);
        }
    } else {
        uint64_t tail = 0;
        while (head < RING_ITEMS) {
            while (tail == head) {
                /* acquire: pairs with the producer's release store of tail. */
                tail = atomic_load_explicit(&r->tail, memory_order_acquire);
                if (tail == head)
                    cpu_relax();
            }
            sum += r->slot[head & RING_MASK];
            head++;
            /* release: pairs with the producer's acquire load of head. */
            atomic_store_explicit(&r->head, head, memory_order_release);
        }
    }
    r->t_end = now_ms();
    r->sum = sum;
    return NULL;
}

/* The first two CPUs this process may run on, or -1, -1. */
static void pick_cpus(int cpu[2])
{
    cpu[0] = cpu[1] = -1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    single_cpu = CPU_COUNT(&set) < 2;
    int found = 0, pick[2] = {-1, -1};
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &set))
            pick[found++] = c;
    if (found == 2) {
        cpu[0] = pick[0];
        cpu[1] = pick[1];
    }
}

static int ring_unpinned; /* a thread could not be pinned in some run */

static double ring_run(int batched, const int cpu[2], uint64_t *check)
{
    struct ring *r = aligned_alloc(CACHE_LINE, sizeof *r);
    if (!r) {
        perror("weft-floor: aligned_alloc");
        exit(1);
    }
    memset(r, 0, sizeof *r);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    atomic_init(&r->go, 0);
    atomic_init(&r->ready, 0);
    atomic_init(&r->pin_failed, 0);
    r->batched = batched;
    r->cpu[0] = cpu[0];
    r->cpu[1] = cpu[1];
    pthread_t p, c;
    int err = pthread_create(&c, NULL, ring_consumer, r);
    if (!err)
        err = pthread_create(&p, NULL, ring_producer, r);
    if (err) {
        fprintf(stderr, "weft-floor: pthread_create: %s\n", strerror(err));
        exit(1);
    }
    /* Both threads exist and spin at the start line before the clock runs;
     * the producer reads the clock when it leaves it, the consumer when it
     * has the last item. */
    while (atomic_load_explicit(&r->ready, memory_order_relaxed) < 2)
        sched_yield();
    /* release: pairs with the threads' acquire loads in wait_for_start. */
    atomic_store_explicit(&r->go, 1, memory_order_release);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    double ms = r->t_end - r->t_start;
    *check += r->sum;
    if (atomic_load_explicit(&r->pin_failed, memory_order_relaxed))
        ring_unpinned = 1;
    free(r);
    return ms;
}

/* ----------------------------------------------------------------- spawn */

struct task;
typedef void (*task_fn)(struct task *);

/* 80 bytes, as BENCH.md's floor says: a state word, the queue link, the
 * function to run and its argument, and room for a small future. */
struct task {
    _Atomic uint64_t state;
    struct task *next;
    task_fn run;
    uint64_t arg;
    unsigned char future[48];
};
_Static_assert(sizeof(struct task) == 80, "task block is 80 bytes");

enum { TASK_SCHEDULED = 1, TASK_RUNNING = 2 };

static uint64_t spawn_sum;

__attribute__((noinline)) static void task_body(struct task *t)
{
    spawn_sum += t->arg;
}

/* The function pointer is read through a volatile so the compiler cannot
 * see which function the blocks will run and fold the loop away. */
static task_fn volatile task_body_ptr = task_body;

static double spawn_run(uint64_t *check)
{
    struct task *first = NULL, **last = &first;
    task_fn fn = task_body_ptr;
    spawn_sum = 0;
    double t0 = now_ms();
    for (uint64_t i = 0; i < SPAWN_TASKS; i++) {
        struct task *t = malloc(sizeof *t);
        if (!t) {
            perror("weft-floor: malloc");
            exit(1);
        }
        t->run = fn;
        t->arg = i;
        t->next = NULL;
        /* release: what a scheduler does so that the worker that takes the
         * task sees the block initialised. */
        atomic_store_explicit(&t->state, TASK_SCHEDULED, memory_order_release);
        *last = t;
        last = &t->next;
    }
    while (first) {
        struct task *t = first;
        first = t->next;
        /* acquire: pairs with the release store above. */
        if (atomic_load_explicit(&t->state, memory_order_acquire) == TASK_SCHEDULED) {
            atomic_store_explicit(&t->state, TASK_RUNNING, memory_order_relaxed);
            t->run(t);
        }
        free(t);
    }
    double ms = now_ms() - t0;
    *check += spawn_sum;
    return ms;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: weft-floor (no arguments)\n");
        return 2;
    }
    int cpu[2];
    pick_cpus(cpu);
    uint64_t check = 0;
    double batched[RUNS], per_item[RUNS], spawn[RUNS];
    for (int i = 0; i < RUNS; i++) {
        /* interleaved, so machine noise falls on all three alike */
        batched[i] = ring_run(1, cpu, &check);
        per_item[i] = ring_run(0, cpu, &check);
        spawn[i] = spawn_run(&check);
    }
    const uint64_t ring_sum = RING_ITEMS * (RING_ITEMS - 1) / 2;
    const uint64_t spawn_sum_expected = SPAWN_TASKS * (SPAWN_TASKS - 1) / 2;
    const uint64_t expected = RUNS * (2 * ring_sum + spawn_sum_expected);

    if (cpu[0] >= 0 && !ring_unpinned)
        printf("ring_cpus=%d,%d\n", cpu[0], cpu[1]);
    else
        printf("ring_cpus=unpinned\n");
    printf("ring_batched_ms=%.3f\n", median(batched, RUNS));
    printf("ring_per_item_ms=%.3f\n", median(per_item, RUNS));
    double spawn_ms = median(spawn, RUNS);
    printf("spawn_ms=%.3f\n", spawn_ms);
    printf("spawn_ns_per_task=%.2f\n", spawn_ms * 1e6 / (double)SPAWN_TASKS);
    printf("check=%llu\n", (unsigned long long)check);
    if (check != expected) {
        fprintf(stderr, "weft-floor: wrong check, expected %llu\n",
                (unsigned long long)expected);
        return 1;
    }
    return 0;
}
