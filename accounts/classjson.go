package accounts

import "encoding/json"

// UnmarshalJSON reads a stored class. Limits added after a class was
// stored are missing from its record; they take the value of the default
// class of the same name (standard's for other classes) instead of 0,
// which would mean unlimited. A limit stored as 0 stays 0.
func (c *Class) UnmarshalJSON(b []byte) error {
	type plain Class // without this method
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	base := laterLimits(head.Name)
	p := plain(base)
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = Class(p)
	return nil
}

// laterLimits holds, for a class name, the limits added to Class after
// the first release (and nothing else).
func laterLimits(name string) Class {
	var def Class
	for _, d := range DefaultClasses() {
		if d.Name == name || d.Name == DefaultClassName && def.Name == "" {
			def = d
		}
	}
	return Class{
		IMAPCommandBurst:    def.IMAPCommandBurst,
		MaxMailboxes:        def.MaxMailboxes,
		MaxMailboxDepth:     def.MaxMailboxDepth,
		MaxMailboxNameBytes: def.MaxMailboxNameBytes,
	}
}
