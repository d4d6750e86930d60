// Numeric constants of the Linux netlink / rtnetlink ABI.
// Glibc does not import <linux/netlink.h> or <linux/rtnetlink.h>, so the values are spelled out here
// (they are part of the stable kernel ABI).
import Glibc

enum NetlinkABI {
    static let netlinkRoute: Int32 = 0              // NETLINK_ROUTE
    static let netlinkGeneric: Int32 = 16           // NETLINK_GENERIC
    static let solNetlink: Int32 = 270              // SOL_NETLINK
    static let capAck: Int32 = 10                   // NETLINK_CAP_ACK: errors do not echo our request
    static let extAck: Int32 = 11                   // NETLINK_EXT_ACK: kernel adds a text reason to errors

    static let headerSize = 16                      // struct nlmsghdr

    // nlmsg_type values for control messages
    static let msgError: UInt16 = 2
    static let msgDone: UInt16 = 3
    static let msgOverrun: UInt16 = 4

    // nlmsg_flags
    static let fRequest: UInt16 = 0x1
    static let fMulti: UInt16 = 0x2
    static let fAck: UInt16 = 0x4
    static let fDumpIntr: UInt16 = 0x10
    static let fDump: UInt16 = 0x300
    static let fReplace: UInt16 = 0x100
    static let fExcl: UInt16 = 0x200
    static let fCreate: UInt16 = 0x400
    static let fCapped: UInt16 = 0x100              // on NLMSG_ERROR: request payload not echoed
    static let fAckTLVs: UInt16 = 0x200             // on NLMSG_ERROR: extended-ack attributes follow
    static let errAttrMsg: UInt16 = 1               // NLMSGERR_ATTR_MSG
    static let nlaFNested: UInt16 = 0x8000          // NLA_F_NESTED, or'ed into a nested attribute's type

    // rtnetlink message types
    static let newLink: UInt16 = 16, delLink: UInt16 = 17, getLink: UInt16 = 18
    static let newAddr: UInt16 = 20, delAddr: UInt16 = 21, getAddr: UInt16 = 22
    static let newRoute: UInt16 = 24, delRoute: UInt16 = 25, getRoute: UInt16 = 26
    static let newNeigh: UInt16 = 28, delNeigh: UInt16 = 29, getNeigh: UInt16 = 30
    static let newRule: UInt16 = 32, delRule: UInt16 = 33, getRule: UInt16 = 34

    // IFLA_* link attributes
    static let iflaAddress: UInt16 = 1
    static let iflaIfname: UInt16 = 3
    static let iflaMTU: UInt16 = 4
    static let iflaLink: UInt16 = 5
    static let iflaMaster: UInt16 = 10
    static let iflaOperstate: UInt16 = 16
    static let iflaLinkinfo: UInt16 = 18
    static let iflaStats64: UInt16 = 23
    static let iflaNetNsFD: UInt16 = 28
    static let iflaInfoKind: UInt16 = 1
    static let iflaInfoData: UInt16 = 2
    static let vethInfoPeer: UInt16 = 1
    static let iflaVxlanPort: UInt16 = 15
    static let iflaVxlanCollectMetadata: UInt16 = 25

    static let iffUp: UInt32 = 0x1
    static let iffLowerUp: UInt32 = 0x10000

    // IFA_* address attributes
    static let ifaAddress: UInt16 = 1
    static let ifaLocal: UInt16 = 2
    static let ifaLabel: UInt16 = 3

    // RTA_* route attributes
    static let rtaDst: UInt16 = 1
    static let rtaOif: UInt16 = 4
    static let rtaGateway: UInt16 = 5
    static let rtaPriority: UInt16 = 6
    static let rtaPrefsrc: UInt16 = 7
    static let rtaMetrics: UInt16 = 8
    static let rtaxMTU: UInt16 = 2
    static let rtaTable: UInt16 = 15

    // NDA_* neighbour attributes
    static let ndaDst: UInt16 = 1
    static let ndaLladdr: UInt16 = 2
    static let nudPermanent: UInt16 = 0x80

    // FRA_* rule attributes (linux/fib_rules.h)
    static let fraDst: UInt16 = 1
    static let fraSrc: UInt16 = 2
    static let fraPriority: UInt16 = 6
    static let fraFwmark: UInt16 = 10
    static let fraTable: UInt16 = 15
    static let fraFwmask: UInt16 = 16
    static let frActToTable: UInt8 = 1              // FR_ACT_TO_TBL

    static let afInet = UInt8(AF_INET)
}
