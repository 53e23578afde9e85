"""Nuke's script format: the TCL lexer (``tcl``), ``.nk`` statements and the stack language
(``script``); the reader, knob mapping and writer build on those two layers.
"""
