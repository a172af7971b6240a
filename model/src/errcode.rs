//! ZooKeeper's error codes (`KeeperException.Code`).

use std::fmt;

/// A ZooKeeper error code. Unknown values are kept as [`ErrorCode::Other`] so that any
/// code found in a file round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: everything is OK.
    Ok,
    /// -1: a system or server-side error.
    SystemError,
    /// -2: a runtime inconsistency (later ops of a failed multi).
    RuntimeInconsistency,
    /// -3: a data inconsistency.
    DataInconsistency,
    /// -4: connection to the server lost.
    ConnectionLoss,
    /// -5: error while marshalling or unmarshalling data.
    MarshallingError,
    /// -6: operation unimplemented.
    Unimplemented,
    /// -7: operation timeout.
    OperationTimeout,
    /// -8: invalid arguments.
    BadArguments,
    /// -13: a new config was requested while another was in progress.
    NewConfigNoQuorum,
    /// -14: reconfiguration in progress.
    ReconfigInProgress,
    /// -15: unknown session.
    UnknownSession,
    /// -100: API error.
    ApiError,
    /// -101: node does not exist.
    NoNode,
    /// -102: not authenticated.
    NoAuth,
    /// -103: version conflict.
    BadVersion,
    /// -108: ephemeral nodes may not have children.
    NoChildrenForEphemerals,
    /// -110: the node already exists.
    NodeExists,
    /// -111: the node has children.
    NotEmpty,
    /// -112: the session has been expired by the server.
    SessionExpired,
    /// -113: invalid callback.
    InvalidCallback,
    /// -114: invalid ACL.
    InvalidAcl,
    /// -115: client authentication failed.
    AuthFailed,
    /// -118: session moved to another server.
    SessionMoved,
    /// -119: state-changing request passed to a read-only server.
    NotReadOnly,
    /// -120: attempt to create an ephemeral node on a local session.
    EphemeralOnLocalSession,
    /// -121: no watcher.
    NoWatcher,
    /// -122: request not completed within the max allowed time.
    RequestTimeout,
    /// -123: reconfig disabled.
    ReconfigDisabled,
    /// -124: session closed because of a client-side quota.
    SessionClosedRequireSaslAuth,
    /// -125: exceeded quota.
    QuotaExceeded,
    /// -127: request throttled.
    Throttled,
    /// Any other value.
    Other(i32),
}

impl ErrorCode {
    /// Decodes the numeric code.
    pub fn from_i32(code: i32) -> ErrorCode {
        use ErrorCode::*;
        match code {
            0 => Ok,
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -4 => ConnectionLoss,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -7 => OperationTimeout,
            -8 => BadArguments,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -15 => UnknownSession,
            -100 => ApiError,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -113 => InvalidCallback,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -118 => SessionMoved,
            -119 => NotReadOnly,
            -120 => EphemeralOnLocalSession,
            -121 => NoWatcher,
            -122 => RequestTimeout,
            -123 => ReconfigDisabled,
            -124 => SessionClosedRequireSaslAuth,
            -125 => QuotaExceeded,
            -127 => Throttled,
            other => Other(other),
        }
    }

    /// The numeric code.
    pub fn as_i32(self) -> i32 {
        use ErrorCode::*;
        match self {
            Ok => 0,
            SystemError => -1,
            RuntimeInconsistency => -2,
            DataInconsistency => -3,
            ConnectionLoss => -4,
            MarshallingError => -5,
            Unimplemented => -6,
            OperationTimeout => -7,
            BadArguments => -8,
            NewConfigNoQuorum => -13,
            ReconfigInProgress => -14,
            UnknownSession => -15,
            ApiError => -100,
            NoNode => -101,
            NoAuth => -102,
            BadVersion => -103,
            NoChildrenForEphemerals => -108,
            NodeExists => -110,
            NotEmpty => -111,
            SessionExpired => -112,
            InvalidCallback => -113,
            InvalidAcl => -114,
            AuthFailed => -115,
            SessionMoved => -118,
            NotReadOnly => -119,
            EphemeralOnLocalSession => -120,
            NoWatcher => -121,
            RequestTimeout => -122,
            ReconfigDisabled => -123,
            SessionClosedRequireSaslAuth => -124,
            QuotaExceeded => -125,
            Throttled => -127,
            Other(v) => v,
        }
    }

    /// ZooKeeper's name for the code (`KeeperException.Code` in upper snake case).
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Ok => "OK",
            SystemError => "SYSTEMERROR",
            RuntimeInconsistency => "RUNTIMEINCONSISTENCY",
            DataInconsistency => "DATAINCONSISTENCY",
            ConnectionLoss => "CONNECTIONLOSS",
            MarshallingError => "MARSHALLINGERROR",
            Unimplemented => "UNIMPLEMENTED",
            OperationTimeout => "OPERATIONTIMEOUT",
            BadArguments => "BADARGUMENTS",
            NewConfigNoQuorum => "NEWCONFIGNOQUORUM",
            ReconfigInProgress => "RECONFIGINPROGRESS",
            UnknownSession => "UNKNOWNSESSION",
            ApiError => "APIERROR",
            NoNode => "NONODE",
            NoAuth => "NOAUTH",
            BadVersion => "BADVERSION",
            NoChildrenForEphemerals => "NOCHILDRENFOREPHEMERALS",
            NodeExists => "NODEEXISTS",
            NotEmpty => "NOTEMPTY",
            SessionExpired => "SESSIONEXPIRED",
            InvalidCallback => "INVALIDCALLBACK",
            InvalidAcl => "INVALIDACL",
            AuthFailed => "AUTHFAILED",
            SessionMoved => "SESSIONMOVED",
            NotReadOnly => "NOTREADONLY",
            EphemeralOnLocalSession => "EPHEMERALONLOCALSESSION",
            NoWatcher => "NOWATCHER",
            RequestTimeout => "REQUESTTIMEOUT",
            ReconfigDisabled => "RECONFIGDISABLED",
            SessionClosedRequireSaslAuth => "SESSIONCLOSEDREQUIRESASLAUTH",
            QuotaExceeded => "QUOTAEXCEEDED",
            Throttled => "THROTTLEDOP",
            Other(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_i32())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_named_code_round_trips() {
        for code in -130..=1 {
            let e = ErrorCode::from_i32(code);
            assert_eq!(e.as_i32(), code);
        }
        assert_eq!(ErrorCode::from_i32(-110), ErrorCode::NodeExists);
        assert_eq!(ErrorCode::NoNode.name(), "NONODE");
    }
}
