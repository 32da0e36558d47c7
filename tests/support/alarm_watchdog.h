/* Test support: a watchdog for tests whose failure mode is a hang (a timer
 * that never fires, an endless loop). alarm_watchdog_install(msg) once in
 * main(); every test then runs under alarm_watchdog_arm/disarm (cmocka
 * fixtures of the same names exist too), and a test still running after
 * ALARM_WATCHDOG_S seconds ends the program with `msg` and status 1, so
 * the last RUN line names it. Each test program includes it once. */
#ifndef WEFT_TESTS_ALARM_WATCHDOG_H
#define WEFT_TESTS_ALARM_WATCHDOG_H

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define ALARM_WATCHDOG_S 60

static const char *g_alarm_msg = "watchdog: test hung\n";

static void alarm_watchdog_fired(int sig)
{
    (void)sig;
    /* Only async-signal-safe calls here. */
    if (write(STDERR_FILENO, g_alarm_msg, strlen(g_alarm_msg)) < 0)
        _exit(2);
    _exit(1);
}

/* `msg`: what a hang most likely means, with its newline; static storage. */
static inline void alarm_watchdog_install(const char *msg)
{
    g_alarm_msg = msg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = alarm_watchdog_fired;
    sigaction(SIGALRM, &sa, NULL);
}

static inline int alarm_watchdog_arm(void **state)
{
    (void)state;
    alarm(ALARM_WATCHDOG_S);
    return 0;
}

static inline int alarm_watchdog_disarm(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

#endif
