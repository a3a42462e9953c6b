// Command remote-pull pulls an image into a containerd with containerd 1.6's
// own client (Client.Pull with WithPullUnpack), the way the CRI plugin does:
// with -info, snapshotters.AppendInfoHandlerWrapper labels each layer's
// Prepare with the image, manifest and layer (the remote-snapshotter labels),
// so a snapshotter that can make the layer itself answers AlreadyExists and
// containerd neither fetches nor applies it. Prints one JSON line: the image's
// name and target digest, and how long the pull took.
//
// Built offline in GOPATH mode from Debian's Go sources (see ../build.ts); run as
//
//	remote-pull -address /run/containerd/containerd.sock -snapshotter dist -info -plain-http REF
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/snapshotters"
	"github.com/containerd/containerd/remotes/docker"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd's socket")
	namespace := flag.String("namespace", "default", "containerd namespace")
	snapshotter := flag.String("snapshotter", "dist", "snapshotter to unpack into")
	info := flag.Bool("info", false, "label layers for remote snapshotters (snapshotters.AppendInfoHandlerWrapper)")
	plainHTTP := flag.Bool("plain-http", false, "talk plain HTTP to the registry")
	user := flag.String("user", "", "registry credentials user:password")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: remote-pull [flags] REF")
		os.Exit(2)
	}
	ref := flag.Arg(0)
	if err := pull(*address, *namespace, *snapshotter, ref, *info, *plainHTTP, *user); err != nil {
		fmt.Fprintf(os.Stderr, "remote-pull: %v\n", err)
		os.Exit(1)
	}
}

func pull(address, namespace, snapshotter, ref string, info, plainHTTP bool, user string) error {
	client, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)

	ropts := docker.ResolverOptions{PlainHTTP: plainHTTP}
	if user != "" {
		name, secret, _ := strings.Cut(user, ":")
		ropts.Credentials = func(string) (string, string, error) { return name, secret, nil }
	}
	opts := []containerd.RemoteOpt{
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(docker.NewResolver(ropts)),
	}
	if info {
		opts = append(opts, containerd.WithImageHandlerWrapper(snapshotters.AppendInfoHandlerWrapper(ref)))
	}
	start := time.Now()
	img, err := client.Pull(ctx, ref, opts...)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"name":   img.Name(),
		"digest": img.Target().Digest.String(),
		"ms":     time.Since(start).Milliseconds(),
	})
}
