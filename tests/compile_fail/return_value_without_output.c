/* expect: WEFT_FN_RETURN\(value\) in an async fn without an output */
/* An async fn without an output has nowhere to put a value. */
#include "weft/co.h"

typedef struct untyped {
    weft_future base;
    weft_co co;
} untyped;

WEFT_ASYNC_FN_VOID(untyped)
{
    WEFT_FN_BEGIN;
    WEFT_FN_RETURN(1);
    WEFT_FN_END;
}

const weft_future_ops *compile_fail_ops(void);
const weft_future_ops *compile_fail_ops(void) { return &untyped_ops; }
