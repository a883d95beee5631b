/**
 * What a Well file holds, as the writer needs to know it before the first frame arrives: the grid, the time
 * axis, the fields and their tensor orders, constant scalars and boundary conditions. Plain data, so it crosses
 * into the writer's worker thread unchanged.
 */

/** A field of the file: `t<order>_fields/<name>`. */
export interface WellFieldSpec {
  name: string;
  /** Tensor order: 0 scalar field, 1 vector (D components), 2 tensor (D x D components, row-major). */
  order: 0 | 1 | 2;
  /** Default true. A field with `timeVarying: false` is a constant field, given once per trajectory. */
  timeVarying?: boolean;
  /** Default true. A field with `sampleVarying: false` is the same for every trajectory (given once). */
  sampleVarying?: boolean;
  /**
   * Default all true. A false entry means the field does not vary along that spatial axis: the axis is not
   * stored (the Well format checker's convention) and readers broadcast it.
   */
  dimVarying?: boolean[];
  /** Order-2 fields only: recorded as attributes. */
  symmetric?: boolean;
  antisymmetric?: boolean;
}

/** A boundary condition group `boundary_conditions/<name>`. */
export interface WellBoundarySpec {
  /** Spatial dimension it applies to (one of `spatialDims`). */
  dim: string;
  bcType: 'PERIODIC' | 'OPEN' | 'WALL';
  /** Group name; default `<dim>_<bctype lower-case>` (e.g. `x_periodic`, `y_wall`). */
  name?: string;
  /** True at boundary points, length = the dimension's size; default true at both ends only. */
  mask?: boolean[];
  /** Fields it is associated with (default none). */
  fields?: string[];
}

/** A constant scalar (`scalars/<name>`, 0-d float64, also a root attribute and a simulation parameter). */
export interface WellScalarSpec {
  name: string;
  value: number;
}

/** Everything about a file that is fixed before frames are written. */
export interface WellFileSpec {
  /** Root attribute `dataset_name`. */
  datasetName: string;
  /** Root attribute `grid_type`; default `cartesian`. */
  gridType?: string;
  /** Spatial dimension names in axis order, e.g. `['x', 'y']`. */
  spatialDims: string[];
  /** Coordinates of each spatial dimension (`dimensions/<dim>`, float32). Their lengths set the grid size. */
  coords: Record<string, ArrayLike<number>>;
  /** Times of the frames (`dimensions/time`, float32); its length is the number of frames per trajectory. */
  time: ArrayLike<number>;
  /** Fields, in the order they get in each group's `field_names` (the reader's channel order). */
  fields: WellFieldSpec[];
  /** Constant scalars (written as `scalars/<name>`, root attributes and `simulation_parameters`). */
  scalars?: WellScalarSpec[];
  boundaryConditions?: WellBoundarySpec[];
}

/** Number of tensor components of a field of `order` in `nDims` dimensions. */
export function componentCount(order: number, nDims: number): number {
  return nDims ** order;
}

/** Shape of one stored frame of a field: the varying spatial axes, then the tensor axes. */
export function frameShape(spec: WellFileSpec, field: WellFieldSpec): number[] {
  const nDims = spec.spatialDims.length;
  const dimVarying = field.dimVarying ?? spec.spatialDims.map(() => true);
  const shape: number[] = [];
  spec.spatialDims.forEach((d, i) => {
    if (dimVarying[i]) shape.push(spec.coords[d]?.length ?? 0);
  });
  for (let k = 0; k < field.order; k++) shape.push(nDims);
  return shape;
}
