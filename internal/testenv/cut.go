package testenv

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Link is a loopback TCP relay in front of a real server that a test can cut and
// restore, to stage a database outage without touching the shared cluster.
type Link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
	thawed chan struct{} // closed while bytes flow; a fresh open one while frozen
}

// CuttableURL returns dbURL rewritten to pass through a new Link, and the Link.
func CuttableURL(t testing.TB, dbURL string) (string, *Link) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: u.Host, up: true, conns: map[net.Conn]bool{}, thawed: make(chan struct{})}
	close(l.thawed)
	go l.accept()
	t.Cleanup(func() { ln.Close(); l.Thaw(); l.Cut() })
	u.Host = ln.Addr().String()
	return u.String(), l
}

func (l *Link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		up := l.up
		l.mu.Unlock()
		if !up {
			c.Close() // refused, as an unreachable server would be
			continue
		}
		l.waitThawed() // a frozen server accepts, then says nothing
		s, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[s] = true, true
		l.mu.Unlock()
		go l.pipe(c, s)
		go l.pipe(s, c)
	}
}

func (l *Link) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.waitThawed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (l *Link) waitThawed() {
	l.mu.Lock()
	ch := l.thawed
	l.mu.Unlock()
	<-ch
}

// Freeze holds every byte in both directions, on open and new connections alike, as a
// server stopped with SIGSTOP would: connections stay open and nothing answers.
func (l *Link) Freeze() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.thawed:
		l.thawed = make(chan struct{})
	default: // frozen already
	}
}

// Thaw lets the held bytes through.
func (l *Link) Thaw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.thawed:
	default:
		close(l.thawed)
	}
}

// Cut drops every open connection and refuses new ones until Restore.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up = false
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
}

// Restore lets connections through again.
func (l *Link) Restore() {
	l.mu.Lock()
	l.up = true
	l.mu.Unlock()
}
