package auth

import "testing"

func TestBearerToken(t *testing.T) {
	cases := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer\tabc", "abc", true},
		{"Bearer abc==", "abc==", true},
		{"Bearer a-b_c~d+e/f", "a-b_c~d+e/f", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc", "", false},
		{"Bearer a b", "", false},
		{"Bearer a,b", "", false},
		{"Bearer =abc", "", false},
		{"Bearer ab=c", "", false},
		{"Bearer abc\x00", "", false},
		{"Bearer \"abc\"", "", false},
		{"Beare abc", "", false},
		{"Bearer\u00a0abc", "", false},
	}
	for _, tc := range cases {
		got, ok := BearerToken([]byte(tc.header))
		if got != tc.want || ok != tc.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQueryToken(t *testing.T) {
	cases := []struct {
		uri  string
		want string
		ok   bool
	}{
		{"/ws?token=abc.def.ghi", "abc.def.ghi", true},
		{"/ws?a=1&token=abc&b=2", "abc", true},
		{"/ws?token=a%2Eb%2ec", "a.b.c", true},
		{"/ws?token=a+b", "a b", true},
		{"/ws?%74oken=abc", "abc", true},
		{"/ws?token=abc#frag", "abc", true},
		{"/ws?token=first&token=second", "first", true},
		{"http://gw.example.com/ws?token=abc", "abc", true},
		{"/ws?token=abc=def", "abc=def", true},
		{"/ws", "", false},
		{"/ws?", "", false},
		{"/ws?token=", "", false},
		{"/ws?token", "", false},
		{"/ws?token=&token=abc", "", false},
		{"/ws?tokens=abc", "", false},
		{"/ws?Token=abc", "", false},
		{"/ws?token=%zz", "", false},
		{"/ws?%zz=1&token=abc", "abc", true},
		{"/ws#?token=abc", "", false},
		{"/ws?a=1;token=abc", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := QueryToken([]byte(tc.uri))
		if got != tc.want || ok != tc.ok {
			t.Errorf("QueryToken(%q) = %q, %v; want %q, %v", tc.uri, got, ok, tc.want, tc.ok)
		}
	}
}
