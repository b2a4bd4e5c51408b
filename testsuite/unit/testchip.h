/*
 * For tests: a chip preset that must load, and a 2D tensor type.
 */
#ifndef PODSIM_TESTCHIP_H
#define PODSIM_TESTCHIP_H

#include <check.h>
#include <string.h>

#include "sim/chip.h"

static inline Chip test_chip(const char *name)
{
	Chip c;
	Diag d;
	diag_init(&d);
	ck_assert_msg(chip_load(name, &c, &d) == 0, "%s: %s", name, d.msg);
	return c;
}

static inline Type test_t2(DType dt, int64_t a, int64_t b)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.rank = 2;
	t.dims[0] = a;
	t.dims[1] = b;
	return t;
}

#endif
