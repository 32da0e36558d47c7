/* Test support: the downcast at the top of every hand-written poll (and
 * drop): a future is the first member, `base`, of the struct that
 * implements it, so a pointer to it is a pointer to that struct. */
#ifndef WEFT_TESTS_DOWNCAST_H
#define WEFT_TESTS_DOWNCAST_H

/* In a poll (or drop) whose future parameter is `f`: declares `self`, `f`
 * as the `type *` whose first member it is. */
#define DOWNCAST(type, self) type *self = (type *)f

#endif
