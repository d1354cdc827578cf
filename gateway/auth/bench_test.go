package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func BenchmarkVerify(b *testing.B) {
	v := newTestVerifier(b, Keys{Secret: []byte(testSecret)})
	tok := signed(b, jwt.MapClaims{
		"sub": "user-42", "exp": testNow.Add(time.Hour).Unix(),
		"channels": []string{"news.*", "user.42.*", "chat"}, "publish": []string{"chat"},
	})
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	bad := tok[:len(tok)-2] + "AA"
	b.Run("bad-signature", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(bad, testNow); err == nil {
				b.Fatal("verified")
			}
		}
	})
}

// BenchmarkVerifyJWKS prices a handshake's token check per key kind: what
// an unauthenticated client can make the gateway spend with a known kid.
func BenchmarkVerifyJWKS(b *testing.B) {
	path, k := standardJWKS(b)
	v := newTestVerifier(b, Keys{Secret: []byte(testSecret), JWKSFile: path})
	claims := jwt.MapClaims{"sub": "user-42", "exp": testNow.Add(time.Hour).Unix(), "channels": []string{"news.*"}}
	for _, bc := range []struct {
		name  string
		token string
	}{
		{"HS256", signKID(b, jwt.SigningMethodHS256, []byte(testSecret), "", claims)},
		{"RS256", signKID(b, jwt.SigningMethodRS256, k.rsa, "rsa-1", claims)},
		{"ES256", signKID(b, jwt.SigningMethodES256, k.ec, "ec-1", claims)},
		{"EdDSA", signKID(b, jwt.SigningMethodEdDSA, k.ed, "ed-1", claims)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(bc.token, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct {
		name     string
		patterns Patterns
		channel  string
	}{
		{"exact", Patterns{"news.sport"}, "news.sport"},
		{"one-star", Patterns{"news.*"}, "news.sport.football"},
		{"ten-patterns-miss", Patterns{"a.*", "b.*", "c.*", "d.*", "e.*", "f.*", "g.*", "h.*", "i.*", "j.*"}, "news.sport"},
		{"many-stars-worst", Patterns{strings.Repeat("*a", 63) + "b"}, strings.Repeat("a", 128)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.patterns.Match(bc.channel)
			}
		})
	}
}

func BenchmarkOriginAllowed(b *testing.B) {
	p, err := ParseOriginPolicy("https://app.example.com, https://admin.example.com, *.example.net, example.org")
	if err != nil {
		b.Fatal(err)
	}
	origin := []byte("https://a.b.example.net")
	b.ReportAllocs()
	for b.Loop() {
		if !p.Allowed(origin) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkTokenExtract(b *testing.B) {
	header := []byte("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl")
	uri := []byte("/ws?v=1&token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl")
	b.Run("bearer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			BearerToken(header)
		}
	})
	b.Run("query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			QueryToken(uri)
		}
	})
}
