package graph

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestListsMarshalInOrder guards the go generate step that swaps gqlgen's
// goroutine-per-element list marshalling for marshalSlice.
func TestListsMarshalInOrder(t *testing.T) {
	src, err := os.ReadFile("generated.go")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(src, []byte("graphql.MarshalSliceConcurrently(")); n != 0 {
		t.Errorf("generated.go calls graphql.MarshalSliceConcurrently %d times: run go generate ./... (seqslice.go rewrites them)", n)
	}
	if !bytes.Contains(src, []byte("marshalSlice(")) {
		t.Error("generated.go never calls marshalSlice")
	}
}

func TestMarshalSlice(t *testing.T) {
	ctx := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{})
	var seen []int
	got := marshalSlice(ctx, 3, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		if idx := *graphql.GetFieldContext(ctx).Index; idx != i {
			t.Errorf("element %d marshalled with index %d", i, idx)
		}
		seen = append(seen, i)
		return graphql.MarshalString(strconv.Itoa(i))
	})
	var buf bytes.Buffer
	got.MarshalGQL(&buf)
	if want := `["0","1","2"]`; buf.String() != want {
		t.Errorf("marshalSlice = %s, want %s", buf.String(), want)
	}
	if len(seen) != 3 || seen[0] != 0 || seen[2] != 2 {
		t.Errorf("elements marshalled in order %v, want [0 1 2]", seen)
	}

	// A panicking element nulls the list and becomes an error, as gqlgen's
	// own version does; the other elements still run.
	calls := 0
	got = marshalSlice(ctx, 3, 0, false, func(ctx context.Context, i int) graphql.Marshaler {
		calls++
		if i == 1 {
			panic("boom")
		}
		return graphql.MarshalString("ok")
	})
	if got != nil {
		t.Errorf("a panicking element gave %v, want a nil list", got)
	}
	if calls != 3 {
		t.Errorf("%d elements marshalled, want 3", calls)
	}
	if errs := graphql.GetErrors(ctx); len(errs) != 1 {
		t.Errorf("errors after a panic: %v, want one", errs)
	}
}
