"""Each phase of Algorithm 1 run on files: it reads a stage's inputs, calls the method and writes the stage's output."""
