//go:build ignore

// seqslice rewrites gqlgen's generated code to marshal lists in order on the
// calling goroutine (marshalSlice in slice.go) instead of a goroutine per
// element. go generate runs it right after gqlgen; TestListsMarshalInOrder
// fails if a regenerated file skipped it.
//
//	go run seqslice.go -file generated.go
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
)

func main() {
	// A flag, not a bare argument: go run would take a trailing .go file
	// for a source file of this program.
	path := flag.String("file", "", "generated file to rewrite in place")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "usage: go run seqslice.go -file FILE")
		os.Exit(2)
	}
	src, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bytes.ReplaceAll(src, []byte("graphql.MarshalSliceConcurrently("), []byte("marshalSlice("))
	if err := os.WriteFile(*path, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
