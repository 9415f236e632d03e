"""The UserSync aggregate: pure decisions over events, standard library only."""
