package graph

import "github.com/identityd/identityd/model"

// courierMessageConnection is a page of courier messages as a Relay
// connection.
func courierMessageConnection(p *model.Page[*model.CourierMessage]) *model.CourierMessageConnection {
	conn := &model.CourierMessageConnection{Edges: make([]*model.CourierMessageEdge, len(p.Items))}
	for i, m := range p.Items {
		conn.Edges[i] = &model.CourierMessageEdge{Cursor: model.EncodeCursor(m.ID), Node: m}
	}
	var first, last string
	if n := len(conn.Edges); n > 0 {
		first, last = conn.Edges[0].Cursor, conn.Edges[n-1].Cursor
	}
	conn.PageInfo = pageInfo(p, first, last)
	conn.TotalCount, conn.IsTotalCountExact = totalCount(p)
	return conn
}

// nullIfEmpty shows a stored empty string (an SMS's subject, no error yet)
// as null.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
