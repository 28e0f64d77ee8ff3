"""The signer's side: Ed25519 key generation, encrypted storage, loading and signing."""
