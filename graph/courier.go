package graph

import (
	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// courierMessageConnection is a page of courier messages as a Relay
// connection.
func courierMessageConnection(p *model.Page[*model.CourierMessage]) *model.CourierMessageConnection {
	conn := &model.CourierMessageConnection{}
	conn.Edges, conn.PageInfo, conn.TotalCount, conn.IsTotalCountExact = connectionParts(p,
		func(m *model.CourierMessage) uuid.UUID { return m.ID },
		func(c string, m *model.CourierMessage) *model.CourierMessageEdge {
			return &model.CourierMessageEdge{Cursor: c, Node: m}
		})
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
