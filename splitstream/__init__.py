"""SplitStream's shared contracts: every service imports these, and services never import each other."""
