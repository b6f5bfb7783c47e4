/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Static inline functions of the kernel that af_bus.ko's Rust code calls
 * (declared again in sys/helpers.rs), as functions, and the family's
 * sk_write_space.
 */
#ifndef AF_BUS_HELPERS_H
#define AF_BUS_HELPERS_H

#include <linux/types.h>

struct sk_buff;
struct sock;

void af_bus_pagefault_disable(void);
void af_bus_pagefault_enable(void);
unsigned long af_bus_rlimit_nofile(void);
void af_bus_consume_skb(struct sk_buff *skb);
void af_bus_prot_inuse_add(struct sock *sk, int val);
u32 af_bus_quota_uid(void);
void af_bus_write_space(struct sock *sk);

#endif /* AF_BUS_HELPERS_H */
