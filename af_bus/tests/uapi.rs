// SPDX-License-Identifier: GPL-2.0

//! Pins the ABI: the values and layouts bindgen reads off `bus.h` are the
//! ones user space was built against, and must not move.

use af_bus_core::uapi::*;

#[test]
fn numbers_are_the_abi() {
    assert_eq!(AF_BUS, 46);
    assert_eq!(SOL_BUS, 288);
    assert_eq!((BUS_PATH_MAX, BUS_ADDR_COMP_MAX, BUS_ADDR_MAX), (60, 8, 64));
    assert_eq!((BUS_HANDLE_PREFIX, BUS_MULTICAST_MARK), (b':', b'*'));
    assert_eq!(
        [
            SCM_OWNED_ADDR,
            SCM_REVOKE_ADDR,
            SCM_MULTICAST_MATCH,
            SCM_MULTICAST_UNMATCH,
            SCM_MULTICAST_SEND,
            SCM_SRC_ADDR,
            SCM_DST_ADDR,
            SCM_MOVE_ADDR
        ],
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        [
            BUS_POLICY,
            BUS_ADDRS,
            BUS_RX_RING,
            BUS_NO_ENOBUFS,
            BUS_DROPS
        ],
        [1, 2, 3, 4, 5]
    );
    assert_eq!(BUS_POLICY_MCAST_SEND_GRANTED, 1);
    assert_eq!((BUS_NOTIFY_GONE, BUS_NOTIFY_OVERFLOW), (1, 2));
    assert_eq!(BUS_FRAME_ALIGNMENT, 16);
    assert_eq!((BUS_FRAME_KERNEL, BUS_FRAME_USER), (0, 1));
    assert_eq!(
        [
            BUS_FRAME_F_MULTICAST,
            BUS_FRAME_F_DISCARDED,
            BUS_FRAME_F_QUEUED
        ],
        [1, 2, 4]
    );
}

#[test]
fn layouts_are_the_abi() {
    assert_eq!(SOCKADDR_BUS_SIZE, 128);
    assert_eq!(
        (SBUS_NCOMP_OFFSET, SBUS_PATH_OFFSET, SBUS_ADDR_OFFSET),
        (2, 4, 64)
    );
    assert_eq!(NOTIFICATION_HDR_LEN, 16);
    assert_eq!(RING_REQ_SIZE, 8);
    assert_eq!(frame::HDR_LEN, 288);
    assert_eq!(
        [
            frame::STATUS,
            frame::LEN,
            frame::FLAGS,
            frame::DATA_OFFSET,
            frame::PID,
            frame::UID,
            frame::GID,
            frame::WAITING,
            frame::SRC,
            frame::DST
        ],
        [0, 4, 8, 12, 16, 20, 24, 28, 32, 160]
    );
}
