/* expect: WEFT_FN_RETURN_VOID in an async fn with an output */
/* An async fn with an output must finish with WEFT_FN_RETURN(value). */
#include "weft/co.h"

typedef struct typed {
    weft_future base;
    weft_co co;
} typed;

WEFT_ASYNC_FN(typed, int)
{
    WEFT_FN_BEGIN;
    WEFT_FN_RETURN_VOID;
    WEFT_FN_END;
}

const weft_future_ops *compile_fail_ops(void);
const weft_future_ops *compile_fail_ops(void) { return &typed_ops; }
