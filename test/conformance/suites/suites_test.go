// Package suites runs containerd 1.6's own content and snapshot test suites
// against a daemon that speaks containerd's gRPC API, through containerd's own
// proxy clients, with the setup of containerd's integration/client tests:
//
//   - content: each case gets a fresh namespace and a lease (the suite's
//     context wrapper; the cross-namespace cases ask it for a second one), and
//     the case's cleanup aborts its ingests and deletes its blobs;
//   - snapshots: the cases run in parallel in the suite's namespace
//     ("testsuite"), once per snapshotter name, one snapshotter after another.
//
// Built with `go test -c` in GOPATH mode from Debian's Go sources (see
// test/conformance/build.ts); run as
//
//	suites.test -test.v -address /path/to.sock -snapshotters overlayfs,native
package suites

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/content"
	contentproxy "github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/content/testsuite"
	"github.com/containerd/containerd/defaults"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	leasesproxy "github.com/containerd/containerd/leases/proxy"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	snapshotsproxy "github.com/containerd/containerd/snapshots/proxy"
	snapshotsuite "github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

var (
	address = flag.String("address", os.Getenv("CONTAINERD_ADDRESS"),
		"unix socket of the daemon under test ($CONTAINERD_ADDRESS)")
	snapshotterNames = flag.String("snapshotters", envOr("CONTAINERD_SNAPSHOTTER", "overlayfs,native"),
		"comma-separated snapshotter names the proxy sends ($CONTAINERD_SNAPSHOTTER)")
)

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

var (
	connOnce sync.Once
	conn     *grpc.ClientConn
	connErr  error
)

// dial connects once per process, with the dial options containerd's client uses.
func dial() (*grpc.ClientConn, error) {
	if *address == "" {
		return nil, fmt.Errorf("no daemon address: pass -address SOCKET or set CONTAINERD_ADDRESS")
	}
	connOnce.Do(func() {
		bc := backoff.DefaultConfig
		bc.MaxDelay = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, connErr = grpc.DialContext(ctx, dialer.DialAddress(*address),
			grpc.WithBlock(),
			grpc.WithInsecure(),
			grpc.FailOnNonTempDialError(true),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc}),
			grpc.WithContextDialer(dialer.ContextDialer),
			grpc.WithReturnConnectionError(),
			grpc.WithDefaultCallOptions(
				grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
				grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)),
		)
	})
	if connErr != nil {
		return nil, fmt.Errorf("dial %s: %w", *address, connErr)
	}
	return conn, nil
}

// namespaceSeq numbers the content namespaces across the whole run, so that
// every case starts in namespaces nothing else has touched.
var namespaceSeq uint64

// newContentStore is containerd's integration/client newContentStore, with
// namespaces numbered per run instead of per case.
func newContentStore(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
	c, err := dial()
	if err != nil {
		return nil, nil, nil, err
	}
	cs := contentproxy.NewContentStore(contentapi.NewContentClient(c))
	lm := leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(c))
	name := testsuite.Name(ctx)

	var (
		mu   sync.Mutex
		made []string
	)
	wrap := func(ctx context.Context) (context.Context, func(context.Context) error, error) {
		ns := fmt.Sprintf("%s-n%d", name, atomic.AddUint64(&namespaceSeq, 1))
		mu.Lock()
		made = append(made, ns)
		mu.Unlock()
		ctx = namespaces.WithNamespace(ctx, ns)
		// containerd's Client.WithLease
		l, err := lm.Create(ctx, leases.WithRandomID(), leases.WithExpiration(24*time.Hour))
		if err != nil {
			return ctx, func(context.Context) error { return nil }, err
		}
		return leases.WithLease(ctx, l.ID), func(ctx context.Context) error { return lm.Delete(ctx, l) }, nil
	}
	ctx = testsuite.SetContextWrapper(ctx, wrap)

	return ctx, cs, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, ns := range made {
			// re-namespacing one context, as containerd's cleanup does: the
			// namespace header is then sent more than once, newest first
			ctx = namespaces.WithNamespace(ctx, ns)
			statuses, err := cs.ListStatuses(ctx)
			if err != nil {
				return err
			}
			for _, st := range statuses {
				if err := abort(ctx, cs, st.Ref); err != nil {
					return fmt.Errorf("failed to abort %s: %w", st.Ref, err)
				}
			}
			err = cs.Walk(ctx, func(info content.Info) error {
				if err := cs.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// abort is the cleanup's Abort, retried for about a second: the proxy writer's
// Close does not wait for the server, so the last writer of a case may still be
// closing when the cleanup runs, and containerd's local writer rewrites the
// ingest's "updatedat" file as it closes (its Abort then fails with "directory
// not empty" on a loaded machine). NotFound is success, as upstream.
func abort(ctx context.Context, cs content.Store, ref string) error {
	var err error
	for delay := 16 * time.Millisecond; delay <= 512*time.Millisecond; delay *= 2 {
		if err = cs.Abort(ctx, ref); err == nil || errdefs.IsNotFound(err) {
			return nil
		}
		time.Sleep(delay)
	}
	return err
}

// TestContent: the 12 cases of ContentSuite and the 2 of the shared policy
// (containerd's default), as TestContent/<Case>.
func TestContent(t *testing.T) {
	testsuite.ContentSuite(t, "content", newContentStore)
	testsuite.ContentCrossNSSharedSuite(t, "content", newContentStore)
}

// TestSnapshotter: SnapshotterSuite once per snapshotter name, as
// TestSnapshotter/<name>/<Case>; a name's cases run in parallel.
func TestSnapshotter(t *testing.T) {
	for _, name := range strings.Split(*snapshotterNames, ",") {
		name := strings.TrimSpace(name)
		if name == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			snapshotsuite.SnapshotterSuite(t, name, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
				c, err := dial()
				if err != nil {
					return nil, nil, err
				}
				return snapshotsproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(c), name), func() error { return nil }, nil
			})
		})
	}
}
