package graph

import (
	"fmt"
	"strings"
)

// Hostile documents, shared by the limit tests and the fuzz seeds (the root
// package's HTTP tests have their own copies).

// fragmentBomb is `{ ...F<n> }` where F0 is __typename and every further
// fragment spreads the one before twice: 2^n fields once expanded, in a
// document of about 40n bytes.
func fragmentBomb(op, typ string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s { ...F%d } fragment F0 on %s { __typename }", op, n, typ)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, " fragment F%d on %s { ...F%d ...F%d }", i, typ, i-1, i-1)
	}
	return b.String()
}

func repeatTypename(n int) string { return "{" + strings.Repeat(" __typename", n) + " }" }

func manyVariables(n int) string {
	var b strings.Builder
	b.WriteString("query(")
	for i := range n {
		fmt.Fprintf(&b, "$v%d: Int ", i)
	}
	b.WriteString(") { __typename }")
	return b.String()
}

func nested(n int) string {
	return strings.Repeat("{ whoami ", n) + strings.Repeat("}", n)
}

// aliases is n aliased fields below one root field.
func aliases(n int) string {
	var b strings.Builder
	b.WriteString(`{ __type(name: "Query") {`)
	for i := range n {
		fmt.Fprintf(&b, " a%d: name", i)
	}
	b.WriteString(" } }")
	return b.String()
}

// rootFields is n root fields.
func rootFields(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	b.WriteString(" }")
	return b.String()
}

// fragments is n fragments spread below one root field.
func fragments(n int) string {
	var b strings.Builder
	b.WriteString(`{ __type(name: "Query") {`)
	for i := range n {
		fmt.Fprintf(&b, " ...F%d", i)
	}
	b.WriteString(" } }")
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on __Type { name }", i)
	}
	return b.String()
}

// below is n fields below one root field.
func below(n int) string {
	return `{ __type(name: "Query") {` + strings.Repeat(" name", n) + " } }"
}
