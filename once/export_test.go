package once

// ReadBacks reports how many statements of g had an unknown outcome (or
// changed no row) and were resolved by reading the row back.
func ReadBacks(g *Guard) int64 { return g.readBacks.Load() }
