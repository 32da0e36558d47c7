/* Private: weft's own bits in weft_future.flags / weft_stream.flags. */
#ifndef WEFT_SCHED_FUTURE_INTERNAL_H
#define WEFT_SCHED_FUTURE_INTERNAL_H

#define WEFT_F__POLLED 0x40000000u /* polled at least once: pinned */
#define WEFT_F__DONE 0x80000000u   /* returned READY / DONE (debug builds) */

#endif
