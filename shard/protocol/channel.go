package protocol

// MaxChannelLen is the longest channel name in bytes.
const MaxChannelLen = 128

// ValidChannel reports whether s is a channel name: 1 to MaxChannelLen bytes
// of A-Z a-z 0-9 . _ : @ -.
//
// The set is small and ASCII-only so that a name never needs JSON escaping,
// can be used verbatim as a broker subject token, and compares byte-wise.
func ValidChannel(s string) bool { return validName(s) }

// validName is ValidChannel for either representation, so the parser can
// check a name before paying for the string.
func validName[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ChannelByte(s[i]) {
			return false
		}
	}
	return true
}

// ChannelByte reports whether c may appear in a channel name. It is exported
// so that channel patterns (gateway/auth) share one definition of the set.
func ChannelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '.', c == '_', c == ':', c == '@', c == '-':
		return true
	}
	return false
}
