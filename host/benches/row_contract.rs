//! The row contract's two candidates, measured natively on the vehicle
//! transform's output for 10,000 messages (docs/decisions.md, "Typed rows
//! from guests"): typed columns, which the host moves into Arrow buffers
//! and checks (`assemble`), against Arrow IPC bytes, which the guest would
//! have to build and encode and the host decode and cast. The transform
//! into the row builders is the same for both and timed once.
//!
//! `cargo bench --bench row_contract`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    new_null_array,
};
use deltalake::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use gtfs_rt::sample::Sample;
use weir::runtime::{Column, ColumnValues};
use weir::sink::delta::{TableSchema, TableSettings, TableWriter, assemble};
use weir_guest::{Message, Output, Values};

#[path = "support/typed.rs"]
#[expect(dead_code, reason = "this bench converts columns only")]
mod typed;

const MESSAGES: usize = 10_000;
const ROUNDS: usize = 30;

fn rows(values: &[Vec<u8>]) -> Output {
    let mut out = Output::default();
    for (offset, value) in (0..).zip(values) {
        let message = Message::new("vehicles", 0, offset, Some(value));
        out.handle(&message, vehicle_transform::transform);
    }
    out
}

/// The one table's columns, as the host receives them on the typed path.
fn typed(out: Output) -> anyhow::Result<(Vec<u32>, Vec<Column>)> {
    let (tables, _) = out.into_parts();
    let table = tables
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no rows"))?;
    let (_, sources, columns) = table.into_parts();
    Ok((sources, typed::columns(columns)))
}

fn offsets(offsets: &[u32]) -> OffsetBuffer<i32> {
    let converted: Vec<i32> = offsets
        .iter()
        .map(|o| i32::try_from(*o).unwrap_or(i32::MAX))
        .collect();
    OffsetBuffer::new(ScalarBuffer::from(converted))
}

/// What the guest would do on the IPC path: arrays from the builders'
/// vectors (no copy but the offsets), encoded as one IPC stream.
fn ipc_encode(out: Output) -> anyhow::Result<Vec<u8>> {
    let (tables, _) = out.into_parts();
    let table = tables
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no rows"))?;
    let rows = table.rows();
    let (_, _, columns) = table.into_parts();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for column in columns {
        let (name, values, valid) = column.into_parts();
        let nulls =
            valid.map(|b| NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(b), 0, rows)));
        let array: ArrayRef = match values {
            Values::Int64(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Float64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Boolean(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            Values::Utf8 { offsets: o, bytes } => Arc::new(StringArray::try_new(
                offsets(&o),
                Buffer::from_vec(bytes),
                nulls,
            )?),
            Values::Binary { offsets: o, bytes } => Arc::new(BinaryArray::try_new(
                offsets(&o),
                Buffer::from_vec(bytes),
                nulls,
            )?),
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

/// What the host would do on the IPC path: decode, cast to the table's types.
fn ipc_decode(bytes: &[u8], schema: &SchemaRef) -> anyhow::Result<RecordBatch> {
    let mut reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let batch = reader.next().ok_or_else(|| anyhow::anyhow!("no batch"))??;
    let arrays = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(a) if a.data_type() == f.data_type() => Ok(Arc::clone(a)),
            Some(a) => cast(a, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

/// Fastest and median of [`ROUNDS`] timings.
fn timed(
    mut run: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<(Duration, Duration)> {
    let mut times = (0..ROUNDS)
        .map(|_| run())
        .collect::<anyhow::Result<Vec<_>>>()?;
    times.sort();
    Ok((times[0], times[ROUNDS / 2]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let schema = TableSchema::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions/vehicle-transform/tables/vehicle_positions.json"),
    )?;
    let uri = dir.path().display().to_string();
    let table = tokio::runtime::Runtime::new()?.block_on(TableWriter::open(
        "vehicle_positions",
        &uri,
        &Default::default(),
        &schema,
        &[],
        &TableSettings {
            checkpoint_interval: 100,
            ..TableSettings::default()
        },
    ))?;
    let schema = Arc::clone(table.arrow_schema());
    let network = Sample::new(10_000, 7);
    let values: Vec<Vec<u8>> = gtfs_rt::messages(&network.vehicle_positions(1_764_000_000))
        .map(|m| m.value)
        .take(MESSAGES)
        .collect();

    let transform = timed(|| {
        let started = Instant::now();
        std::hint::black_box(rows(&values));
        Ok(started.elapsed())
    })?;
    let typed_host = timed(|| {
        let out = rows(&values);
        let started = Instant::now();
        let (sources, columns) = typed(out)?;
        let (rows, bad) = assemble(&schema, &sources, columns);
        anyhow::ensure!(
            bad.is_empty() && rows.batch.num_rows() == MESSAGES,
            "{bad:?}"
        );
        Ok(started.elapsed())
    })?;
    let ipc_guest = timed(|| {
        let out = rows(&values);
        let started = Instant::now();
        std::hint::black_box(ipc_encode(out)?);
        Ok(started.elapsed())
    })?;
    let bytes = ipc_encode(rows(&values))?;
    let ipc_host = timed(|| {
        let started = Instant::now();
        let batch = ipc_decode(&bytes, &schema)?;
        anyhow::ensure!(batch.num_rows() == MESSAGES, "{} rows", batch.num_rows());
        Ok(started.elapsed())
    })?;
    let (_, columns) = typed(rows(&values))?;
    let typed_bytes: usize = columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Int64(v) => v.len() * 8,
            ColumnValues::Float64(v) => v.len() * 8,
            ColumnValues::Boolean(v) => v.len(),
            ColumnValues::Utf8 { offsets, bytes } | ColumnValues::Binary { offsets, bytes } => {
                offsets.len() * 4 + bytes.len()
            }
        } + c.valid.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "{MESSAGES} vehicle messages, natively, fastest (median) of {ROUNDS}:\n\
         transform into the row builders (both paths): {:.2} ms ({:.2} ms)\n\
         typed columns: host moves and checks them: {:.2} ms ({:.2} ms); {typed_bytes} bytes cross the boundary\n\
         Arrow IPC: guest builds arrays and encodes: {:.2} ms ({:.2} ms); host decodes and casts: {:.2} ms ({:.2} ms); {} bytes cross the boundary",
        ms(transform.0),
        ms(transform.1),
        ms(typed_host.0),
        ms(typed_host.1),
        ms(ipc_guest.0),
        ms(ipc_guest.1),
        ms(ipc_host.0),
        ms(ipc_host.1),
        bytes.len()
    );
    Ok(())
}
