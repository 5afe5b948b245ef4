"""Training and evaluation of the emotion classifier on FER2013 (not part of the Bento)."""
