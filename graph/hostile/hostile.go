// Package hostile makes the GraphQL documents a security review used
// against the service (fragment bombs, quadratic validation, thousands of
// variables, …), for the limit tests, the fuzz seeds and the HTTP tests alike.
package hostile

import (
	"fmt"
	"strings"
)

// FragmentBomb is `{ ...F<n> }` where F0 is __typename and every further
// fragment spreads the one before twice: 2^n fields once expanded, in a
// document of about 40n bytes.
func FragmentBomb(op, typ string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s { ...F%d } fragment F0 on %s { __typename }", op, n, typ)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, " fragment F%d on %s { ...F%d ...F%d }", i, typ, i-1, i-1)
	}
	return b.String()
}

// RepeatTypename is one selection of n __typename fields: quadratic for
// gqlparser's overlapping-fields validation.
func RepeatTypename(n int) string { return "{" + strings.Repeat(" __typename", n) + " }" }

// Variables is a query that declares n variables.
func Variables(n int) string {
	var b strings.Builder
	b.WriteString("query(")
	for i := range n {
		fmt.Fprintf(&b, "$v%d: Int ", i)
	}
	b.WriteString(") { __typename }")
	return b.String()
}

// Nested nests n whoami fields.
func Nested(n int) string {
	return strings.Repeat("{ whoami ", n) + strings.Repeat("}", n)
}

// Aliases is n aliased fields below one root field.
func Aliases(n int) string {
	var b strings.Builder
	b.WriteString(`{ __type(name: "Query") {`)
	for i := range n {
		fmt.Fprintf(&b, " a%d: name", i)
	}
	b.WriteString(" } }")
	return b.String()
}

// RootFields is n root fields.
func RootFields(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	b.WriteString(" }")
	return b.String()
}

// Fragments is n fragments spread below one root field.
func Fragments(n int) string {
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

// Below is n fields below one root field.
func Below(n int) string {
	return `{ __type(name: "Query") {` + strings.Repeat(" name", n) + " } }"
}

// GraphiQLIntrospection is the query GraphiQL (the playground at /) sends
// first: 13 levels deep, which max_depth must not refuse.
const GraphiQLIntrospection = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`
