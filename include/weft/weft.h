/* weft — umbrella header: includes every public header and nothing else. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/future.h"
#include "weft/iter.h"
#include "weft/co.h"
#include "weft/rt.h"
#include "weft/time.h"
#include "weft/sync.h"
#include "weft/channels.h"
#include "weft/select.h"
#include "weft/io.h"
#include "weft/testing.h"

#endif /* WEFT_H */
