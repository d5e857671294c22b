"""Verifies a labgate assertion with PyJWT, exactly as the README tells app developers to.

Usage: verify_assertion.py JWKS_URL ISSUER AUDIENCE TOKEN
Prints the claims as JSON and exits 0, or prints the error and exits 1.
"""
import json
import sys

import jwt  # pip install "pyjwt[crypto]"


def identity(jwks_url: str, issuer: str, audience: str, assertion: str) -> dict:
    jwks = jwt.PyJWKClient(jwks_url)
    key = jwks.get_signing_key_from_jwt(assertion)
    return jwt.decode(assertion, key.key, algorithms=["ES256"], audience=audience, issuer=issuer,
                      options={"require": ["exp", "iat", "sub", "iss", "aud"]})


if __name__ == "__main__":
    try:
        print(json.dumps(identity(*sys.argv[1:5])))
    except Exception as e:  # noqa: BLE001 - report any verification failure
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
