// Package clientopen turns the result of making a driver into a Client, the
// same way for every driver package's Open and New: an error becomes an
// "open" *distlock.Error naming the backend, and a driver whose Client
// cannot be made is closed, so nothing it opened is leaked.
package clientopen

import (
	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Client returns a Client over drv, or the error of making drv (err)
// wrapped as an open error of backend.
func Client(backend string, drv driver.Driver, err error, opts []distlock.Option) (*distlock.Client, error) {
	if err != nil {
		return nil, &distlock.Error{Op: "open", Backend: backend, Err: err}
	}
	c, err := distlock.NewClient(drv, opts...)
	if err != nil {
		drv.Close()
		return nil, err
	}
	return c, nil
}
