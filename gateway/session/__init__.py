"""What a visitor carries: sealed session and challenge cookies, keys, nonces."""
