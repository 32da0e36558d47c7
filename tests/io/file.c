/* Tests for io/file.c: whole-file reads and writes on the blocking pool —
 * a write read back byte for byte, an empty file, a file larger than the
 * buffer (-EFBIG, buffer untouched), open errors passed on, bad input, on
 * two workers and on the sim; the cancel sweeps of both futures on the
 * sim (the caller's buffer is never written after a drop). Files live in
 * a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/weft.h"
#include "support/misuse_capture.h"
#include "support/sim_fixture.h"
#include "support/sweep.h"

static char g_dir[64];

static int dir_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/weft-file-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int dir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

/* Jobs the runtime's blocking pool ran. */
static uint64_t bstats_jobs(weft_rt *rt)
{
    weft_blocking_stats s;
    assert_int_equal(weft_blocking_stats_get(rt, &s), 0);
    return s.jobs_run;
}

static int64_t read_all(weft_rt *rt, const char *path, void *buf, size_t cap)
{
    weft_file_io f;
    weft_file_read_all_init(&f, path, buf, cap);
    int64_t out = 12345;
    assert_int_equal(weft_block_on(rt, &f.base, &out, sizeof out), 0);
    return out;
}

static int64_t write_all(weft_rt *rt, const char *path, const void *data, size_t len)
{
    weft_file_io f;
    weft_file_write_all_init(&f, path, data, len);
    int64_t out = 12345;
    assert_int_equal(weft_block_on(rt, &f.base, &out, sizeof out), 0);
    return out;
}

static void round_trip(weft_rt *rt)
{
    static unsigned char data[100000], back[200000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    const char *p = path_of("rt.bin");
    assert_int_equal(write_all(rt, p, data, sizeof data), (int64_t)sizeof data);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, sizeof data);
    memset(back, 0, sizeof back);
    assert_int_equal(read_all(rt, p, back, sizeof back), (int64_t)sizeof data);
    assert_memory_equal(back, data, sizeof data);
    /* Exactly the capacity fits. */
    assert_int_equal(read_all(rt, p, back, sizeof data), (int64_t)sizeof data);
    /* A shorter rewrite truncates. */
    assert_int_equal(write_all(rt, p, "abc", 3), 3);
    assert_int_equal(read_all(rt, p, back, sizeof back), 3);
    assert_memory_equal(back, "abc", 3);
}

static void test_round_trip(void **state)
{
    (void)state;
    round_trip(g_rt);
}

static void test_round_trip_on_a_sim(void **state)
{
    (void)state;
    weft_sim_options so = sim_options(7);
    weft_rt *rt = sim_start(&so);
    round_trip(rt);
    weft_rt_shutdown(rt);
}

static void test_empty_and_too_large(void **state)
{
    (void)state;
    const char *p = path_of("small.txt");
    assert_int_equal(write_all(g_rt, p, NULL, 0), 0);
    char buf[8];
    assert_int_equal(read_all(g_rt, p, buf, sizeof buf), 0);
    assert_int_equal(read_all(g_rt, p, NULL, 0), 0);
    assert_int_equal(write_all(g_rt, p, "123456789", 9), 9);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(read_all(g_rt, p, buf, sizeof buf), -EFBIG);
    assert_memory_equal(buf, "xxxxxxxx", 8); /* nothing copied */
    assert_int_equal(read_all(g_rt, p, NULL, 0), -EFBIG);
}

static void test_errors_passed_on(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(read_all(g_rt, path_of("missing"), buf, sizeof buf), -ENOENT);
    assert_int_equal(write_all(g_rt, path_of("no/such/dir"), "a", 1), -ENOENT);
    assert_int_equal(read_all(g_rt, g_dir, buf, sizeof buf), -EISDIR);
    assert_int_equal(read_all(g_rt, NULL, buf, sizeof buf), -EINVAL);
    assert_int_equal(read_all(g_rt, path_of("x"), NULL, 4), -EINVAL);
    assert_int_equal(write_all(g_rt, NULL, "a", 1), -EINVAL);
    assert_int_equal(write_all(g_rt, path_of("x"), NULL, 1), -EINVAL);
    assert_misuse_since(0, 4, "weft_file_write_all");
    assert_int_equal(bstats_jobs(g_rt), 3);
}

/* ---- cancel sweeps on the sim ------------------------------------------------------ */

typedef struct file_case {
    weft_file_io f;
    char buf[32];
    int64_t out;
    bool write;
} file_case;

static int file_build(weft_rt *rt, void *ctx, weft_future **fut, void **out)
{
    (void)rt;
    file_case *fc = ctx;
    memset(fc->buf, '#', sizeof fc->buf);
    fc->out = 0;
    const char *p = path_of(fc->write ? "sweep-w.txt" : "sweep-r.txt");
    if (fc->write) {
        unlink(p);
        weft_file_write_all_init(&fc->f, p, "written", 7);
    } else {
        weft_file_read_all_init(&fc->f, p, fc->buf, sizeof fc->buf);
    }
    *fut = &fc->f.base;
    *out = &fc->out;
    return 0;
}

static const char *file_check(weft_rt *rt, void *ctx, const weft_sweep_run *run)
{
    file_case *fc = ctx;
    if (run->wakers_after_drop)
        return sweep_say("k=%u: %u waker(s) held after the drop", run->k,
                         run->wakers_after_drop);
    const char *left = sweep_leftovers(rt);
    if (left)
        return left;
    weft_blocking_stats s;
    if (weft_blocking_stats_get(rt, &s) != 0 || s.running || s.queued)
        return "a job is left in the pool";
    if (run->completed) {
        if (fc->out != 7 || (!fc->write && memcmp(fc->buf, "content", 7) != 0))
            return sweep_say("completed with %lld", (long long)fc->out);
    } else if (!fc->write) {
        for (size_t i = 0; i < sizeof fc->buf; i++)
            if (fc->buf[i] != '#')
                return sweep_say("k=%u: the buffer was written after the drop", run->k);
    }
    if (fc->write && run->completed) {
        char back[16] = { 0 };
        int fd = open(path_of("sweep-w.txt"), O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, back, sizeof back) : -1;
        if (fd >= 0)
            close(fd);
        if (n != 7 || memcmp(back, "written", 7) != 0)
            return "the file does not hold what was written";
    }
    return NULL;
}

static void sweep_file(bool write)
{
    static file_case fc;
    fc.write = write;
    weft_sweep_case c = { file_build, file_check, NULL, &fc };
    weft_sweep_options o = sweep_options(1, 1);
    weft_sweep_result res = sweep_pass(&c, &o);
    assert_true(res.polls >= 2); /* it waited for the pool */
    /* More seeds, chaos off: a job's completion is a real thread's, so a
     * spurious wake may find it done or not (the poll count would depend
     * on the OS, which the sweep calls divergence). */
    o = sweep_options(2, 4);
    sweep_pass(&c, &o);
}

static void test_cancel_sweep_read_all(void **state)
{
    (void)state;
    FILE *fp = fopen(path_of("sweep-r.txt"), "w");
    assert_non_null(fp);
    fputs("content", fp);
    fclose(fp);
    sweep_file(false);
}

static void test_cancel_sweep_write_all(void **state)
{
    (void)state;
    sweep_file(true);
}

int main(void)
{
#define RT(fn) cmocka_unit_test_setup_teardown(fn, rt_setup, rt_teardown)
#define T(fn) cmocka_unit_test_setup_teardown(fn, sim_setup, sim_teardown)
    const struct CMUnitTest tests[] = {
        RT(test_round_trip),
        T(test_round_trip_on_a_sim),
        RT(test_empty_and_too_large),
        RT(test_errors_passed_on),
        T(test_cancel_sweep_read_all),
        T(test_cancel_sweep_write_all),
    };
    return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
