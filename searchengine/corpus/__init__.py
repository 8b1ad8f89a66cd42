"""The style-corpus generator: synthetic English speech with controlled, measured style factors."""
