/* expect: item.+ undeclared */
/* WEFT_GEN_YIELD belongs in a generator body: an async fn has no item to
 * write, so it does not compile there. */
#include "weft/co.h"

typedef struct answer {
    weft_future base;
    weft_co co;
} answer;

WEFT_ASYNC_FN(answer, int)
{
    WEFT_FN_BEGIN;
    WEFT_GEN_YIELD(1);
    WEFT_FN_RETURN(2);
    WEFT_FN_END;
}

const weft_future_ops *compile_fail_ops(void);
const weft_future_ops *compile_fail_ops(void) { return &answer_ops; }
