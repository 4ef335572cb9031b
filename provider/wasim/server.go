package wasim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is a Sim listening on a real TCP port, for tests, the demo and the wasim binary.
type Server struct {
	sim  *Sim
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// Listen builds a Sim from opts and serves it on addr (e.g. "127.0.0.1:0" for a free port).
func Listen(addr string, opts Options) (*Server, error) {
	sim, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wasim: listen on %s: %w", addr, err)
	}
	srv := &Server{
		sim:  sim,
		ln:   ln,
		http: &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(srv.done)
		// Serve only returns once the server is closed or shut down; both are reported there.
		_ = srv.http.Serve(ln)
	}()
	return srv, nil
}

// URL is the base URL without /api/v1, e.g. "http://127.0.0.1:41234".
func (srv *Server) URL() string {
	return "http://" + srv.ln.Addr().String()
}

// Sim is the simulator behind the server, to steer faults and inspect state.
func (srv *Server) Sim() *Sim {
	return srv.sim
}

// Shutdown stops accepting requests and waits, up to ctx, for those in flight.
func (srv *Server) Shutdown(ctx context.Context) error {
	err := srv.http.Shutdown(ctx)
	if err != nil {
		// In-flight requests outlived ctx: cut them so Serve returns.
		err = errors.Join(err, srv.http.Close())
	}
	<-srv.done
	srv.sim.CloseWebhooks()
	return err
}

// Close stops the server at once, closing open connections.
func (srv *Server) Close() error {
	err := srv.http.Close()
	<-srv.done
	srv.sim.CloseWebhooks()
	return err
}
