// SPDX-License-Identifier: GPL-2.0

//! The module's parameters (`/sys/module/af_bus/parameters/`): the limits
//! a system administrator may change.

crate::sys::uint_param!(
    MAX_QUEUE_MSGS,
    MAX_QUEUE_MSGS_PARAM,
    "max_queue_msgs",
    256,
    "Most messages one receive queue holds."
);
crate::sys::modinfo!(MAX_QUEUE_MSGS_TYPE, "parmtype=max_queue_msgs:uint");
crate::sys::modinfo!(
    MAX_QUEUE_MSGS_DESC,
    "parm=max_queue_msgs:Most messages one receive queue holds (default 256)"
);

crate::sys::uint_param!(
    MAX_OWNED_ADDRS,
    MAX_OWNED_ADDRS_PARAM,
    "max_owned_addrs",
    64,
    "Most addresses a master may grant one endpoint, its handle aside."
);
crate::sys::modinfo!(MAX_OWNED_ADDRS_TYPE, "parmtype=max_owned_addrs:uint");
crate::sys::modinfo!(
    MAX_OWNED_ADDRS_DESC,
    "parm=max_owned_addrs:Most addresses granted to one endpoint (default 64)"
);

crate::sys::uint_param!(
    MAX_MATCHES,
    MAX_MATCHES_PARAM,
    "max_matches",
    64,
    "Most multicast match grants, and most send grants, of one endpoint."
);
crate::sys::modinfo!(MAX_MATCHES_TYPE, "parmtype=max_matches:uint");
crate::sys::modinfo!(
    MAX_MATCHES_DESC,
    "parm=max_matches:Most match (and send) grants of one endpoint (default 64)"
);
