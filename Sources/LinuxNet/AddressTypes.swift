/// The address types are shared by the whole datapath (maps, routes, links),
/// not only netlink; these names let other modules use them directly.
public typealias IPv4Address = Netlink.IPv4Address
public typealias IPv4Prefix = Netlink.IPv4Prefix
public typealias MACAddress = Netlink.MACAddress
