package authn

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the networks whose X-Forwarded-For Gatehouse believes
// (server.trusted_proxies). Only loopback by default: any other address could be a
// client on the LAN, a VPN or a pod network naming whatever address it likes, and an
// address a client chooses is worth nothing to a throttle or an audit log.
type Proxies []netip.Prefix

// ParseProxies reads server.trusted_proxies (already validated): networks, or single
// addresses.
func ParseProxies(cidrs []string) Proxies {
	var out Proxies
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p)
		} else if a, err := netip.ParseAddr(c); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

func (ps Proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddress is the address a request came from: the connection's, or, when that
// is a trusted proxy, the nearest address in X-Forwarded-For that is not one (each
// trusted proxy appends the address it saw; everything left of the first untrusted
// hop may be the client's invention).
func (ps Proxies) ClientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !ps.trusted(addr) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !ps.trusted(a) || i == 0 {
			return a.Unmap().String()
		}
	}
	return addr.Unmap().String()
}
