//! ICMP and ICMPv6 types and codes as enums with an `Other(u8)` case (smoltcp's
//! `enum_with_unknown`), so a number is compared with a name, never with a literal. The
//! words for each error are `icmp::parse::describe`'s.

/// An enum over a `u8` with named values and `Other(u8)` for the rest; `From` both ways.
macro_rules! enum_with_other {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// A value without a name here.
            Other(u8),
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($value => $name::$variant,)+
                    other => $name::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$variant => $value,)+
                    $name::Other(other) => other,
                }
            }
        }
    };
}

enum_with_other! {
    /// ICMPv4 message types (RFC 792).
    pub enum Icmpv4Type {
        EchoReply = 0,
        DestUnreachable = 3,
        /// Deprecated (RFC 6633), still quotes the packet.
        SourceQuench = 4,
        Redirect = 5,
        EchoRequest = 8,
        TimeExceeded = 11,
        ParameterProblem = 12,
    }
}

enum_with_other! {
    /// Codes of an ICMPv4 destination unreachable (RFC 792, 1122, 1812).
    pub enum Unreachable4 {
        Net = 0,
        Host = 1,
        Protocol = 2,
        Port = 3,
        /// Fragmentation needed and DF set: the next-hop MTU is in the message.
        FragNeeded = 4,
        SourceRouteFailed = 5,
        NetUnknown = 6,
        HostUnknown = 7,
        SourceHostIsolated = 8,
        NetProhibited = 9,
        HostProhibited = 10,
        NetTos = 11,
        HostTos = 12,
        /// Communication administratively prohibited (a filter).
        AdminProhibited = 13,
        HostPrecedenceViolation = 14,
        PrecedenceCutoff = 15,
    }
}

enum_with_other! {
    /// ICMPv6 message types (RFC 4443); below 128 the errors.
    pub enum Icmpv6Type {
        DestUnreachable = 1,
        PacketTooBig = 2,
        TimeExceeded = 3,
        ParameterProblem = 4,
        EchoRequest = 128,
        EchoReply = 129,
    }
}

enum_with_other! {
    /// Codes of an ICMPv6 destination unreachable (RFC 4443, 7112, 8883).
    pub enum Unreachable6 {
        NoRoute = 0,
        /// Communication administratively prohibited (a filter).
        AdminProhibited = 1,
        BeyondScope = 2,
        Address = 3,
        Port = 4,
        SourcePolicyFailed = 5,
        RejectRoute = 6,
        SourceRoutingHeader = 7,
        HeadersTooLong = 8,
    }
}

/// An ICMP or ICMPv6 type, with its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpType {
    V4(Icmpv4Type),
    V6(Icmpv6Type),
}

impl IcmpType {
    /// The type `t` of ICMPv6 when `v6`, else of ICMPv4.
    pub fn of(v6: bool, t: u8) -> IcmpType {
        if v6 {
            IcmpType::V6(t.into())
        } else {
            IcmpType::V4(t.into())
        }
    }

    /// Time exceeded in transit (a router on the way, when the TTL ran out).
    pub fn is_time_exceeded(self) -> bool {
        matches!(
            self,
            IcmpType::V4(Icmpv4Type::TimeExceeded) | IcmpType::V6(Icmpv6Type::TimeExceeded)
        )
    }

    /// An error that says the packet was too big for the path (with `code`): ICMPv6
    /// packet too big, or ICMPv4 fragmentation needed.
    pub fn is_too_big(self, code: u8) -> bool {
        match self {
            IcmpType::V6(t) => t == Icmpv6Type::PacketTooBig,
            IcmpType::V4(t) => {
                t == Icmpv4Type::DestUnreachable
                    && Unreachable4::from(code) == Unreachable4::FragNeeded
            }
        }
    }
}
