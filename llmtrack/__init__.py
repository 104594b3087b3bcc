"""llmtrack: language generation as a token-level MDP, on minirl's algorithms.

This package is the second world of the library (docs/concepts.md): a TokenMDP, tiny
HuggingFace policies and toy languages with exact answers, reusing minirl's trajectory
batch, policy protocol and algorithms. It is built in the llmtrack-world issue; this
release ships only the foundation it will stand on (minirl).
"""

__version__ = "0.1.0"
