/* weft_sim_check_replay: run a scenario twice on one seed and compare the
 * trace hashes (testing.h). Built on the sim's public side only. */
#include "testing/sim.h"

#include <inttypes.h>
#include <stdio.h>

int weft_sim_check_replay(const weft_sim_options *opts, weft_sim_scenario *scenario,
                          void *arg, uint64_t *hash)
{
    if (!scenario)
        return -EINVAL;
    weft_sim_stats st[2];
    for (int i = 0; i < 2; i++) {
        weft_rt *rt;
        int rc = weft_rt_new_sim(&rt, opts);
        if (rc)
            return rc;
        rc = scenario(rt, arg);
        int got = weft_sim_stats_get(rt, &st[i]);
        weft_rt_shutdown(rt);
        if (rc)
            return rc;
        if (got)
            return got;
    }
    if (st[0].trace_hash != st[1].trace_hash) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "weft sim: replay diverged: seed=%" PRIu64 " gave trace %016" PRIx64
                 " then %016" PRIx64 " (the scenario depends on more than the seed)",
                 st[0].seed, st[0].trace_hash, st[1].trace_hash);
        weft__sim_report(opts, msg);
        return -EPROTO;
    }
    if (hash)
        *hash = st[0].trace_hash;
    return 0;
}
