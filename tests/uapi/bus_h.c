// SPDX-License-Identifier: GPL-2.0
/*
 * <linux/bus.h> must compile on its own, as C99 and as C++, with every
 * layout the ABI fixes.
 */
#include <linux/bus.h>
#include <stddef.h>

#ifdef __cplusplus
#define BUS_STATIC_ASSERT(e, m) static_assert(e, #m)
#else
#define BUS_STATIC_ASSERT(e, m) typedef char bus_assert_##m[(e) ? 1 : -1]
#endif

BUS_STATIC_ASSERT(sizeof(struct sockaddr_bus) == 128, sockaddr_size);
BUS_STATIC_ASSERT(offsetof(struct sockaddr_bus, sbus_path) == 4, path_off);
BUS_STATIC_ASSERT(offsetof(struct sockaddr_bus, sbus_addr) == 64, addr_off);
BUS_STATIC_ASSERT(sizeof(struct bus_notification) == 16, notification_size);
BUS_STATIC_ASSERT(sizeof(struct bus_ring_req) == 8, ring_req_size);
BUS_STATIC_ASSERT(sizeof(struct bus_frame_hdr) == 288, frame_hdr_size);
BUS_STATIC_ASSERT(sizeof(struct bus_frame_hdr) % BUS_FRAME_ALIGNMENT == 0, frame_align);
BUS_STATIC_ASSERT(BUS_ADDR_MAX == 64, addr_max);
BUS_STATIC_ASSERT(AF_BUS == 46 && PF_BUS == 46 && SOL_BUS == 288, numbers);
