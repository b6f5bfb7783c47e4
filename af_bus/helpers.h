/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Static inline functions of the kernel that af_bus.ko's Rust code calls
 * (declared again in socket.rs), as functions.
 */
#ifndef AF_BUS_HELPERS_H
#define AF_BUS_HELPERS_H

#include <linux/types.h>

struct sock;

void af_bus_pagefault_disable(void);
void af_bus_pagefault_enable(void);
unsigned long af_bus_rlimit_nofile(void);
void af_bus_prot_inuse_add(struct sock *sk, int val);
u32 af_bus_quota_uid(void);

#endif /* AF_BUS_HELPERS_H */
