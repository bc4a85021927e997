// vtk.js (through xmlbuilder2) expects Node's EventEmitter; the `events` package provides it.
// Importing it here first makes sure the bundle carries it.
import 'events';
